"""One bitstream, every lower quality: the prefixes of a bitstream's steps and what each decodes to.

A bitstream's first k steps (the network's first k iterations, then the refinement layer's block means,
then the rest) are a valid bitstream of their own (``ImageCodec.truncations``). The ladder records, at
encode time while the original is at hand, the size and measured quality of every prefix, so that a
stored master answers ``GET /bitstreams/{id}?msssim=0.9`` (or ``?bytes=N``) with the shortest prefix
that meets it, without encoding again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from service.codec.bitstream import Bitstream
from service.codec.pipeline import CompressResult, ImageCodec
from service.codec.quality import msssim, psnr
from service.errors import BadParameter, NotInLadder

__all__ = ["Rung", "choose_rung", "ladder_from_json", "ladder_to_json", "measure_ladder", "prefix_sizes"]


@dataclass(frozen=True)
class Rung:
    """A prefix of ``steps`` steps: its size in bytes and its decoded image's quality (PSNR None when
    the image is exact)."""

    steps: int
    bytes: int
    msssim: float
    psnr: float | None


def prefix_sizes(codec: ImageCodec, bitstream: bytes) -> list[tuple[int, int]]:
    """(steps, bytes) for each prefix of ``bitstream``'s steps: what a receiver needs to show the image
    after that many steps (each prefix is itself a valid bitstream; the last is all of it)."""
    last = Bitstream.from_bytes(bitstream).steps
    cuts = codec.truncations(bitstream, list(range(1, last)))
    return [*((k, len(cut)) for k, cut in enumerate(cuts, start=1)), (last, len(bitstream))]


def measure_ladder(
    codec: ImageCodec, bitstream: bytes, rgb: np.ndarray, compressed: CompressResult | None = None
) -> list[Rung]:
    """Every prefix of ``bitstream`` with its size and the quality of what it decodes to against the
    original ``rgb`` (the frames a progressive receiver shows, which are exactly the prefixes' images).
    ``compressed``, compress's answer that made ``bitstream``, gives the frames it kept (else they are
    decoded here) and the quality it measured of the whole (else measured here)."""
    sizes = prefix_sizes(codec, bitstream)
    frames = compressed.frames if compressed is not None else []
    rungs = []
    for (steps, size), frame in zip(sizes, frames or codec.step_images(bitstream), strict=True):
        if compressed is not None and steps == sizes[-1][0]:  # the whole bitstream: measured by compress
            quality, value = compressed.msssim, compressed.psnr
        else:
            quality, value = msssim(rgb, frame), psnr(rgb, frame)
        rungs.append(Rung(steps, size, quality, None if np.isinf(value) else value))
    return rungs


def choose_rung(
    ladder: list[Rung], msssim: float | None = None, psnr: float | None = None, max_bytes: int | None = None
) -> Rung:
    """The shortest prefix meeting ``msssim`` or ``psnr``, or the longest within ``max_bytes`` (exactly
    one of them); ``NotInLadder`` when no prefix can."""
    given = {k: v for k, v in {"msssim": msssim, "psnr": psnr, "bytes": max_bytes}.items() if v is not None}
    if len(given) != 1:
        raise BadParameter(f"give exactly one of msssim, psnr and bytes; got {sorted(given) or 'none'}")
    ((kind, value),) = given.items()
    if kind == "bytes":
        fitting = [r for r in ladder if r.bytes <= value]
        if not fitting:
            raise NotInLadder(f"the shortest prefix of this bitstream is {ladder[0].bytes} bytes")
        return fitting[-1]
    quality = (lambda r: r.msssim) if kind == "msssim" else (lambda r: np.inf if r.psnr is None else r.psnr)
    for rung in ladder:
        if quality(rung) >= value:
            return rung
    best = quality(ladder[-1])
    raise NotInLadder(
        f"this bitstream reaches {kind} {best:.4f} at most; {kind}={value:g} needs a new compress"
    )


def ladder_to_json(ladder: list[Rung]) -> list[dict]:
    return [asdict(rung) for rung in ladder]


def ladder_from_json(document: list[dict]) -> list[Rung]:
    return [Rung(int(r["steps"]), int(r["bytes"]), float(r["msssim"]), r["psnr"]) for r in document]
