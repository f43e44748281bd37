"""Each classic codec at the largest quality whose file is not larger than our bitstream, measured
with the same metrics as ours; and the bytes each of our progressive steps needs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.codec.bitstream import Bitstream
from service.codec.goals import Progress
from service.codec.pipeline import ImageCodec
from service.codec.quality import msssim, psnr
from service.comparison.classic import CLASSIC_CODECS, ClassicFile, largest_within

__all__ = ["ClassicResult", "classic_at_budget", "progressive_steps"]


@dataclass
class ClassicResult:
    """One classic codec at our byte budget: its file, or None when even its lowest quality is larger."""

    codec: str
    file: ClassicFile | None
    msssim: float | None = None
    psnr: float | None = None


def classic_at_budget(
    rgb: np.ndarray, max_bytes: int, progress: Progress | None = None
) -> list[ClassicResult]:
    """Every classic codec's largest-quality file within ``max_bytes`` bytes of uint8 [H,W,3] ``rgb``."""
    results = []
    for i, name in enumerate(CLASSIC_CODECS):
        if progress:
            progress(f"encoding {name} at our size", i / len(CLASSIC_CODECS))
        file = largest_within(name, rgb, max_bytes)
        if file is None:
            results.append(ClassicResult(name, None))
        else:
            results.append(ClassicResult(name, file, msssim(rgb, file.decoded), psnr(rgb, file.decoded)))
    return results


def progressive_steps(codec: ImageCodec, bitstream: bytes) -> list[tuple[int, int]]:
    """(steps, bytes) for each prefix of ``bitstream``'s steps (the network's iterations, then the
    refinement layer if any): what a receiver needs to show the image after that many steps (each
    prefix is itself a valid bitstream; the last is all of it)."""
    last = Bitstream.from_bytes(bitstream).steps
    cuts = codec.truncations(bitstream, list(range(1, last)))
    return [*((k, len(cut)) for k, cut in enumerate(cuts, start=1)), (last, len(bitstream))]
