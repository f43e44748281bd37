"""One bitstream, every lower quality: the prefixes of a bitstream's steps and what each decodes to.

A bitstream's first k steps (the network's first k iterations, then the refinement layer's block means,
then the rest) are a valid bitstream of their own (``ImageCodec.truncations``). So is the network's
bitstream with each patch cut at its own count (``ImageCodec.cut``): compress finds, at a few lower
MS-SSIMs, the allocation a compress at that target would choose within the bitstream's counts
(``CompressResult.allocations_below``, decision 40), a tenth smaller than the prefix meeting the same
target. A bitstream the refinement layer made holds no network bits to cut: its rungs below are the
network's own bitstreams, coded by compress beside it (alternates, decision 41). The ladder records, at
encode time while the original is at hand, the size and measured quality of every prefix, cut and
alternate, so that a stored master answers ``GET /bitstreams/{id}?msssim=0.9`` (or ``?bytes=N``) with
the smallest rung that meets it, without encoding again.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass

import numpy as np

from service.codec.bitstream import Bitstream
from service.codec.pipeline import CompressResult, ImageCodec
from service.codec.quality import msssim, psnr
from service.errors import BadParameter, NotInLadder

__all__ = [
    "Rung",
    "choose_rung",
    "ladder_from_json",
    "ladder_to_json",
    "measure_ladder",
    "prefix_sizes",
    "rung_bitstream",
]


#: how a rung's bytes are made from its master, in the order the ladder lists rungs of one size
CUTS = ("prefix", "per-patch", "alternate")


@dataclass(frozen=True)
class Rung:
    """A prefix of ``steps`` steps, with ``counts`` the network's bitstream cut at each patch's own
    count, or with ``bitstream`` a network bitstream of its own coded beside the master (``steps`` the
    largest count of either): its size in bytes and its decoded image's quality (PSNR None when the
    image is exact)."""

    steps: int
    bytes: int
    msssim: float
    psnr: float | None
    #: iterations per patch [patches_y][patches_x] of a per-patch cut (None: a prefix of ``steps``)
    counts: list[list[int]] | None = None
    #: an alternate's own bytes
    bitstream: bytes | None = None

    @property
    def cut(self) -> str:
        """One of ``CUTS``."""
        if self.bitstream is not None:
            return "alternate"
        return "prefix" if self.counts is None else "per-patch"


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
    decoded here), the quality it measured of the whole (else measured here) and the allocations it found
    below it, which become per-patch rungs or alternates. The rungs come in order of size."""
    sizes = prefix_sizes(codec, bitstream)
    frames = compressed.frames if compressed is not None else []
    rungs = []
    for (steps, size), frame in zip(sizes, frames or codec.step_images(bitstream), strict=True):
        if compressed is not None and steps == sizes[-1][0]:  # the whole bitstream: measured by compress
            quality, value = compressed.msssim, compressed.psnr
        else:
            quality, value = msssim(rgb, frame), psnr(rgb, frame)
        rungs.append(Rung(steps, size, quality, _finite(value)))
    below = compressed.allocations_below if compressed is not None else []
    cut_counts = [a.counts for a in below if a.bitstream is None]
    cuts = iter(codec.cuts(bitstream, cut_counts) if cut_counts else [])
    for allocation in below:
        alternate = allocation.bitstream
        size = len(alternate if alternate is not None else next(cuts))
        if any(r.bytes <= size and r.msssim >= allocation.msssim for r in rungs):
            # a rung as small gives as much: a prefix (the allocation kept smooth patches' colour
            # floor), or the same allocation found for a lower target
            continue
        steps, value = int(allocation.counts.max()), _finite(psnr(rgb, allocation.image))
        if alternate is not None:
            rungs.append(Rung(steps, size, allocation.msssim, value, bitstream=alternate))
        else:
            rungs.append(Rung(steps, size, allocation.msssim, value, allocation.counts.astype(int).tolist()))
    return sorted(rungs, key=lambda r: (r.bytes, CUTS.index(r.cut)))


def _finite(value: float) -> float | None:
    return None if np.isinf(value) else value


def rung_bitstream(codec: ImageCodec, bitstream: bytes, rung: Rung) -> bytes:
    """The bytes of ``rung`` of ``bitstream``'s ladder: a prefix of its steps, its per-patch cut, or an
    alternate's own."""
    if rung.bitstream is not None:
        return rung.bitstream
    if rung.counts is not None:
        return codec.cut(bitstream, np.array(rung.counts))
    if rung.steps >= Bitstream.from_bytes(bitstream).steps:
        return bitstream
    return codec.truncations(bitstream, [rung.steps])[0]


def choose_rung(
    ladder: list[Rung], msssim: float | None = None, psnr: float | None = None, max_bytes: int | None = None
) -> Rung:
    """The smallest rung meeting ``msssim`` or ``psnr``, or the best (by MS-SSIM) within ``max_bytes``
    (exactly one of them); ``NotInLadder`` when no rung can."""
    given = {k: v for k, v in {"msssim": msssim, "psnr": psnr, "bytes": max_bytes}.items() if v is not None}
    if len(given) != 1:
        raise BadParameter(f"give exactly one of msssim, psnr and bytes; got {sorted(given) or 'none'}")
    ((kind, value),) = given.items()
    if kind == "bytes":
        fitting = [r for r in ladder if r.bytes <= value]
        if not fitting:
            raise NotInLadder(
                f"the smallest rung of this bitstream's ladder is {min(r.bytes for r in ladder)} bytes"
            )
        return max(fitting, key=lambda r: (r.msssim, r.bytes))
    quality = (lambda r: r.msssim) if kind == "msssim" else (lambda r: np.inf if r.psnr is None else r.psnr)
    meeting = [r for r in ladder if quality(r) >= value]
    if meeting:
        return min(meeting, key=lambda r: r.bytes)
    best = max(quality(r) for r in ladder)
    raise NotInLadder(
        f"this bitstream reaches {kind} {best:.4f} at most; {kind}={value:g} needs a new compress"
    )


def ladder_to_json(ladder: list[Rung], stored: bool = True) -> list[dict]:
    """The ladder as JSON, each rung with its ``cut`` (one of ``CUTS``). ``stored`` keeps what makes a
    rung's bytes again (per-patch counts, an alternate's bytes in base64); clients get the rest."""
    document = []
    for rung in ladder:
        fields = asdict(rung)
        del fields["bitstream"]
        if not stored:
            del fields["counts"]
        elif rung.bitstream is not None:
            fields["bitstream"] = base64.b64encode(rung.bitstream).decode("ascii")
        document.append({**fields, "cut": rung.cut})
    return document


def ladder_from_json(document: list[dict]) -> list[Rung]:
    """The ladder ``ladder_to_json`` stored."""
    return [
        Rung(
            int(r["steps"]),
            int(r["bytes"]),
            float(r["msssim"]),
            r["psnr"],
            r.get("counts"),
            base64.b64decode(r["bitstream"]) if r.get("bitstream") else None,
        )
        for r in document
    ]
