"""Each classic codec at the largest quality whose file is not larger than our bitstream, measured
with the same metrics as ours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.codec.quality import msssim, psnr, ssimulacra2
from service.codec.run import Progress
from service.comparison.classic import CLASSIC_CODECS, ClassicFile, largest_within

__all__ = ["ClassicResult", "classic_at_budget"]


@dataclass
class ClassicResult:
    """One classic codec at our byte budget: its file, or None when even its lowest quality is larger."""

    codec: str
    file: ClassicFile | None
    msssim: float | None = None
    psnr: float | None = None
    ssimulacra2: float | None = None


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
            decoded = file.decoded
            scores = msssim(rgb, decoded), psnr(rgb, decoded), ssimulacra2(rgb, decoded)
            results.append(ClassicResult(name, file, *scores))
    return results
