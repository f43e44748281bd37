"""What people see: the service at SSIMULACRA 2 targets against JPEG 4:2:0, WebP, AVIF and JPEG XL, scored
by SSIMULACRA 2 (and MS-SSIM beside it), both sides in the same run on the same images.

    python -m benchmarks.perceptual                          # Kodak and the validation split
    python -m benchmarks.perceptual --set kodak --targets 30 70 --images 8

For every image and target, ``ImageCodec.compress`` as ``POST /compress?ssimulacra2=`` runs it (both coders
compete, the smaller bitstream reaching the score wins), then for each classic codec:

- **bytes to look as good**: the smallest file reaching our decoded image's score (a sweep of its
  qualities, then a bisection of the whole qualities between the two that bracket the score; per image,
  the smallest file found reaching it), as a ratio of our bytes: above 1, we are smaller;
- **score at our bytes**: the highest quality whose file fits in our bytes, and its score.

Prints one table per set with the geometric mean of the ratios over the images each codec reaches, how many
images each codec scores higher than ours at our bytes, and which coder made ours; writes the rows to
``var/perceptual-<set>.json``; ``--plot`` draws ``docs/perceptual.png`` from those files. ``--sheet`` draws
the picture sheets instead: crops of a face, edges, foliage and a smooth sky-like background, ours beside
WebP and AVIF at no more bytes, at each target (``docs/perceptual_sheet_<target>.png``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from benchmarks.rd_kodak import KODAK, evaluation_sets
from benchmarks.service_process import embedded_codec
from service.codec.quality import msssim, ssimulacra2
from service.codec.rate_control import Target
from service.comparison.classic import CLASSIC_CODECS, encode
from service.settings import PROJECT_ROOT, Settings

__all__ = ["SHEET_CROPS", "ClassicPoint", "PerceptualRow", "bytes_reaching", "summary"]

#: The picture sheet's crops (path under the data folder, x, y, side): a face, an arch's edges against the
#: sky, foliage, a smooth background, and a wing's edge between smooth areas (a validation photo).
SHEET_CROPS = (
    "kodak/kodim04.png:200,220,128",
    "kodak/kodim07.png:300,0,128",
    "kodak/kodim13.png:300,200,128",
    "kodak/kodim23.png:560,20,128",
    "train/bsds500-val/3096.jpg:200,100,128",
)
#: The qualities each classic codec is swept at before the bisection between two of them.
SWEEP = (5, 15, 25, 35, 45, 55, 65, 75, 85, 92, 97, 100)


@dataclass
class ClassicPoint:
    """A classic codec against one of our bitstreams."""

    #: the smallest file found reaching our score, and its quality (None: no quality reaches it)
    bytes_to_match: int | None
    quality_to_match: int | None
    #: the highest quality fitting in our bytes and its score (None: even the lowest does not fit)
    score_at_our_bytes: float | None


@dataclass
class PerceptualRow:
    image: str
    target: float
    bytes: int
    score: float
    msssim: float
    coder: str
    coder_bytes: dict[str, int]
    met: bool
    seconds: float
    classic: dict[str, ClassicPoint] = field(default_factory=dict)


class _Scored:
    """One classic codec on one image: each quality encoded and scored once."""

    def __init__(self, name: str, rgb: np.ndarray) -> None:
        self.name, self.rgb = name, rgb
        self.points: dict[int, tuple[int, float]] = {}

    def at(self, quality: int) -> tuple[int, float]:
        """(bytes, score) at ``quality``."""
        if quality not in self.points:
            file = encode(self.name, self.rgb, quality)
            self.points[quality] = (len(file.data), ssimulacra2(self.rgb, file.decoded))
        return self.points[quality]


def bytes_reaching(scored: _Scored, score: float) -> tuple[int, int] | None:
    """(bytes, quality) of the smallest file reaching ``score``: the sweep, then every whole quality
    between the highest that misses below the lowest that reaches (bisection where scores rise with
    quality), the smallest file reaching it among all tried."""
    for quality in SWEEP:
        scored.at(quality)
    reaching = [q for q in SWEEP if scored.at(q)[1] >= score]
    if not reaching:
        return None
    high = min(reaching)
    below = [q for q in SWEEP if q < high]
    low = max(below) if below else 0
    while high - low > 1:
        middle = (low + high) // 2
        if scored.at(middle)[1] >= score:
            high = middle
        else:
            low = middle
    found = [(size, q) for q, (size, s) in scored.points.items() if s >= score]
    return min(found)


def _score_within(scored: _Scored, budget: int) -> float | None:
    """The score of the highest quality whose file fits in ``budget`` (bisection on size)."""
    low, high = 0, 100
    if scored.at(low)[0] > budget:
        return None
    while low < high:
        middle = (low + high + 1) // 2
        if scored.at(middle)[0] <= budget:
            low = middle
        else:
            high = middle - 1
    return scored.at(low)[1]


def _measure(codec, name: str, rgb: np.ndarray, target: float, classic: dict[str, _Scored]) -> PerceptualRow:
    """Ours at ``target``, and each classic codec (``classic``: its files scored so far, shared by the
    image's targets) against it."""
    result = codec.compress(rgb, Target("ssimulacra2", target))
    score = ssimulacra2(rgb, result.reconstruction)
    row = PerceptualRow(
        name,
        target,
        len(result.bitstream),
        score,
        msssim(rgb, result.reconstruction),
        result.coder,
        result.coder_bytes,
        result.target_met,
        result.timings["total_seconds"],
    )
    for codec_name, scored in classic.items():
        found = bytes_reaching(scored, score)
        row.classic[codec_name] = ClassicPoint(
            found[0] if found else None, found[1] if found else None, _score_within(scored, row.bytes)
        )
    return row


def _geometric_mean(values: list[float]) -> float:
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


def summary(rows: list[PerceptualRow], title: str) -> str:
    """A Markdown table per target: our bytes and score, who made them, and per classic codec the bytes
    it needs to look as good (geometric mean ratio to ours) and how often it looks better at our bytes."""
    names = list(rows[0].classic) if rows else list(CLASSIC_CODECS)
    lines = [
        f"{title}: `POST /compress` at SSIMULACRA 2 targets (`python -m benchmarks.perceptual`); "
        "bytes each codec needs to reach our score, as a multiple of ours (geometric mean over the images "
        "it reaches; > 1: ours is smaller), and on how many images it scores higher at our bytes",
        "",
        "| target | images | met | our bytes | our score (mean) | MS-SSIM (mean) | coder: network / layer | "
        + " | ".join(f"{n}: bytes to match ×" for n in names)
        + " | "
        + " | ".join(f"{n} higher at our bytes" for n in names)
        + " |",
        "|" + " --- |" * (7 + 2 * len(names)),
    ]
    for target in sorted({r.target for r in rows}):
        chosen = [r for r in rows if r.target == target]
        network = sum(r.coder != "layer" for r in chosen)
        ratios, higher = [], []
        for n in names:
            reached = [r.classic[n].bytes_to_match / r.bytes for r in chosen if r.classic[n].bytes_to_match]
            ratios.append(f"{_geometric_mean(reached):.3f} ({len(reached)})")
            scores = [(r.classic[n].score_at_our_bytes, r.score) for r in chosen]
            higher.append(str(sum(s is not None and s > ours for s, ours in scores)))
        total = sum(r.bytes for r in chosen)
        lines.append(
            f"| {target:g} | {len(chosen)} | {sum(r.met for r in chosen)} | {total:,} | "
            f"{np.mean([r.score for r in chosen]):.2f} | {np.mean([r.msssim for r in chosen]):.4f} | "
            f"{network} / {len(chosen) - network} | " + " | ".join(ratios) + " | " + " | ".join(higher) + " |"
        )
    return "\n".join(lines)


def load_rows(path: Path) -> list[PerceptualRow]:
    rows = []
    for raw in json.loads(path.read_text()):
        classic = {k: ClassicPoint(**v) for k, v in raw.pop("classic").items()}
        rows.append(PerceptualRow(**raw, classic=classic))
    return rows


def plot(sets: dict[str, list[PerceptualRow]], out: Path) -> None:
    """Per set, the bytes each classic codec needs to look as good as ours at each target (geometric mean
    over the images it reaches, as a multiple of ours): above 1, ours is smaller."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4), squeeze=False)
    for axis, (title, rows) in zip(axes[0], sets.items(), strict=True):
        targets = sorted({r.target for r in rows})
        names = list(rows[0].classic)
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            means = []
            for target in targets:
                ratios = [
                    r.classic[name].bytes_to_match / r.bytes
                    for r in rows
                    if r.target == target and r.classic[name].bytes_to_match
                ]
                means.append(_geometric_mean(ratios))
            axis.bar(np.arange(len(targets)) + (i - (len(names) - 1) / 2) * width, means, width, label=name)
        axis.axhline(1.0, color="black", linewidth=1)
        axis.set_xticks(range(len(targets)), [f"{t:g}" for t in targets])
        axis.set_xlabel("SSIMULACRA 2 target")
        axis.set_ylabel("bytes to look as good as ours (× ours)")
        axis.set_title(title)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=90)


def _sheets(targets: list[float]) -> None:
    from benchmarks.viewer import picture_sheet

    data = KODAK.parent
    crops = []
    for text in SHEET_CROPS:
        name, _, numbers = text.partition(":")
        x, y, side = (int(v) for v in numbers.split(","))
        crops.append((data / name, x, y, side))
    for target in targets:
        out = PROJECT_ROOT / "docs" / f"perceptual_sheet_{target:g}.png"
        title = f"SSIMULACRA 2 target {target:g}: ours beside WebP and AVIF at no more bytes (2x crops)"
        picture_sheet(crops, Target("ssimulacra2", target), out, ("WebP", "AVIF"), title)
        print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=("kodak", "validation", "both"), default="both")
    parser.add_argument("--targets", type=float, nargs="+", default=[30.0, 50.0, 70.0, 90.0])
    parser.add_argument("--images", type=int, default=0, help="the first N images of each set")
    parser.add_argument("--every", type=int, default=1, help="every N-th image of each set")
    parser.add_argument("--sheet", action="store_true", help="draw the picture sheets instead")
    parser.add_argument("--plot", action="store_true", help="plot var/perceptual-*.json instead")
    args = parser.parse_args(argv)
    if args.sheet:
        _sheets(args.targets)
        return
    if args.plot:
        titles = {"kodak": "Kodak", "validation": "the validation split"}
        found = {
            titles[key]: load_rows(PROJECT_ROOT / "var" / f"perceptual-{key}.json")
            for key in titles
            if (PROJECT_ROOT / "var" / f"perceptual-{key}.json").exists()
        }
        plot(found, PROJECT_ROOT / "docs" / "perceptual.png")
        return
    loaders = evaluation_sets(args.set)
    settings = Settings()
    with embedded_codec(settings) as (codec, _):
        print(f"model {settings.model_name}/{codec.current_version()}")
        for key in loaders:
            images = loaders[key]()[:: args.every][: args.images or None]
            rows = []
            for name, rgb in tqdm(images, desc=key, unit="image"):
                classic = {codec_name: _Scored(codec_name, rgb) for codec_name in CLASSIC_CODECS}
                rows.extend(_measure(codec, name, rgb, target, classic) for target in args.targets)
            out = PROJECT_ROOT / "var" / f"perceptual-{key}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps([asdict(r) for r in rows], indent=1))
            print(summary(rows, "Kodak" if key == "kodak" else "The validation split"))
            print()


if __name__ == "__main__":
    main()
