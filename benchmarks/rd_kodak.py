"""Rate-distortion on Kodak and on our validation split: our codec against JPEG 4:2:0, WebP and AVIF, in
the same run on the same images.

    python -m benchmarks.rd_kodak            # or: make bench (both sets)
    python -m benchmarks.rd_kodak --set validation --images 12
    python -m benchmarks.rd_kodak --psnr-targets-only   # after a change to PSNR targets alone

- Curves: ours at every uniform iteration count (real service bitstreams, decoded by the backend); ours as
  the service compresses (rate control) at MS-SSIM targets 0.85 … 0.98; the baselines at quality steps of 5.
  BD-rates on MS-SSIM (dB) and PSNR.
- Entropy coding: bytes of the context coder against raw bits (format 1) at every iteration count.
- Headline: for MS-SSIM targets 0.90, 0.95, 0.98 and 0.99, the bytes the service writes for each image
  (rate control included) against the smallest JPEG, WebP and AVIF whose quality, searched per image,
  reaches the same MS-SSIM; and against the smallest uniform iteration count that reaches it.
- Ceiling: the best MS-SSIM and PSNR each image reaches (every iteration the model offers), and whether
  `POST /compress` meets `msssim=0.99` and `psnr=35` on it (the decoded image measured).

The validation split is the photographs of ../shared/data/train held out of training
(``model_export.data.is_validation``), at their stored size.

MS-SSIM is ``tf.image.ssim_multiscale`` on RGB in [0, 255] (max_val=255), as ``service/codec/quality.py``
computes it for the gateway too (a separable window; tests check it against TF's function); PSNR on RGB.
Everything runs through the embedded backend over loopback gRPC. Writes docs/results.md and docs/rd_kodak.png
(Kodak), docs/results_validation.md and docs/rd_validation.png (validation).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from benchmarks.bdrate import bd_rate
from benchmarks.service_process import embedded_codec
from benchmarks.viewer import VIEWER_CODECS, ViewerScore, compared_rows, same_bytes_row
from model_export.evaluate import load_folder, load_validation_images
from service.codec.bitstream import (
    DEBLOCKED_FORMAT_VERSION,
    FORMAT_VERSION,
    REFINED_FORMAT_VERSION,
    Bitstream,
)
from service.codec.entropy import CODER_RAW
from service.codec.quality import msssim, msssim_batch, psnr, psnr_batch
from service.codec.rate_control import Target
from service.comparison.classic import CLASSIC_CODECS, encode_decode
from service.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from service.codec.pipeline import ImageCodec

OURS = "ours"
#: The service's own operating points: rate control at a ladder of MS-SSIM targets, and at PSNR targets.
SERVICE = "ours, rate control"
SERVICE_TARGETS = (0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
SERVICE_PSNR = "ours, PSNR targets"
SERVICE_PSNR_TARGETS = (26.0, 28.0, 30.0, 32.0, 35.0, 38.0)
OUR_CURVES = (OURS, SERVICE, SERVICE_PSNR)
KODAK = PROJECT_ROOT.parent / "shared" / "data" / "kodak"
TRAIN = PROJECT_ROOT.parent / "shared" / "data" / "train"


def evaluation_sets(choice: str) -> dict[str, Callable[[], list[tuple[str, np.ndarray]]]]:
    """The image sets a benchmark's ``--set`` names ("kodak", "validation" or "both"), each loaded when
    called: Kodak, and the validation split held out of the training folder."""
    loaders = {"kodak": lambda: load_folder(KODAK), "validation": lambda: load_validation_images(TRAIN)}
    return loaders if choice == "both" else {choice: loaders[choice]}


THRESHOLDS = (0.90, 0.95, 0.98, 0.99)
#: The PSNR target whose service result the ceiling table reports (dB).
PSNR_TARGET = 35.0
#: Ceiling levels counted in the summary.
CEILING_MSSSIM = (0.98, 0.99)
CEILING_PSNR = (35.0, 38.0)
#: MS-SSIM targets at which the viewer comparison (jumps, colour error at the same bytes) runs.
VIEWER_TARGETS = (0.90, 0.95)
#: Plots and curves end here (bpp).
MAX_BPP = 2.5
BPP_TARGETS = (0.25, 0.5, 1.0)
#: Published Kodak points (bpp, MS-SSIM) of the original work and its successor.
PUBLISHED = {
    "Toderici et al. 2017": [(0.25, 0.904), (0.5, 0.954), (1.0, 0.980)],
    "Johnston et al. 2018": [(0.25, 0.947), (0.5, 0.974), (1.0, 0.988)],
}


@dataclass
class Point:
    image: str
    codec: str
    #: ours: iterations (uniform), target MS-SSIM × 1000 (rate control) or target PSNR × 10 (PSNR
    #: targets); baselines: quality
    setting: int
    bytes: int
    bpp: float
    msssim: float
    psnr: float
    raw_bytes: int = 0  # ours only: the same bits as format-1 raw bits


@dataclass
class Measurements:
    points: list[Point] = field(default_factory=list)
    #: (image, threshold) → {codec: bytes or None}; "ours" is what the service wrote (rate control included)
    headline: dict[str, dict[str, int | None]] = field(default_factory=dict)
    service_seconds: list[float] = field(default_factory=list)
    #: (image, target bpp) → bpp of the bitstream the service wrote
    bpp_achieved: dict[str, float] = field(default_factory=dict)
    #: (image, threshold) → (bytes the service wrote, bytes of the same bitstream with raw bits)
    coded_against_raw: dict[str, tuple[int, int]] = field(default_factory=dict)
    model_version: int = 0
    #: (image, target) → ours, JPEG and WebP at no more bytes than ours: jumps and colour error
    viewer: dict[str, dict[str, ViewerScore | None]] = field(default_factory=dict)
    #: image → whether ``POST /compress`` met msssim=0.99 and psnr=35 (the decoded image measured)
    service_met: dict[str, dict[str, bool]] = field(default_factory=dict)
    #: the date the PSNR-target curve was measured again alone (``--psnr-targets-only``), if it was
    psnr_targets_remeasured: str = ""


def load_measurements(path: Path) -> Measurements:
    """Measurements written by an earlier run (``var/<set>.json``): the report again without measuring."""
    raw = json.loads(path.read_text())
    viewer = {
        key: {name: ViewerScore(**score) if score else None for name, score in row.items()}
        for key, row in raw.get("viewer", {}).items()
    }
    return Measurements(
        points=[Point(**p) for p in raw["points"]],
        headline=raw["headline"],
        service_seconds=raw.get("service_seconds", []),
        bpp_achieved=raw.get("bpp_achieved", {}),
        coded_against_raw={k: tuple(v) for k, v in raw.get("coded_against_raw", {}).items()},
        model_version=raw.get("model_version", 0),
        viewer=viewer,
        service_met=raw.get("service_met", {}),
        psnr_targets_remeasured=raw.get("psnr_targets_remeasured", ""),
    )


def msssim_db(value: float) -> float:
    return -10.0 * math.log10(max(1.0 - value, 1e-10))


def raw_size(data: bytes) -> int:
    """Bytes of ``data`` (a bitstream) had its payload been raw bits (coder 0, format 1's payload)."""
    stream = Bitstream.from_bytes(data)
    cells = stream.geometry.cell_iterations(stream.patch_iterations)
    return len(data) - len(stream.payload) + (int(cells.sum()) * stream.bits_per_cell + 7) // 8


def smallest_reaching(name: str, rgb: np.ndarray, threshold: float) -> int | None:
    """Fewest bytes of baseline ``name`` whose MS-SSIM reaches ``threshold``: bisection on quality 1..100."""
    low, high = 1, 100
    size, decoded = encode_decode(name, rgb, high)
    if msssim(rgb, decoded) < threshold:
        return None
    best = size
    while low < high:
        middle = (low + high) // 2
        size, decoded = encode_decode(name, rgb, middle)
        if msssim(rgb, decoded) >= threshold:
            high, best = middle, size
        else:
            low = middle + 1
    return best


def measure(
    images: list[tuple[str, np.ndarray]], iterations: int, settings: Settings, label: str = "Kodak"
) -> Measurements:
    """Every codec at every setting on every (name, RGB) image, and the headline comparison."""
    out = Measurements()
    with embedded_codec(settings) as (codec, _):
        for name, rgb in tqdm(images, desc=label, unit="image"):
            path = Path(name)
            pixels = rgb.shape[0] * rgb.shape[1]
            encoding = codec.encode(rgb, iterations)
            out.model_version = encoding.version
            iterations_run = encoding.bits.shape[0]
            recon = np.stack([encoding.reconstruction(n) for n in range(1, iterations_run + 1)])
            scores, psnrs = msssim_batch(rgb, recon), psnr_batch(rgb, recon)
            patches = encoding.geometry.patches
            for n in range(1, iterations_run + 1):
                counts = np.full(patches, n, np.uint8)
                size = len(codec.bitstream(encoding, counts))
                raw = len(codec.bitstream(encoding, counts, CODER_RAW))
                out.points.append(
                    Point(path.stem, OURS, n, size, 8 * size / pixels, scores[n - 1], psnrs[n - 1], raw)
                )
            for name, classic in CLASSIC_CODECS.items():
                for quality in classic.qualities:
                    size, decoded = encode_decode(name, rgb, quality)
                    bpp = 8 * size / pixels
                    out.points.append(
                        Point(path.stem, name, quality, size, bpp, msssim(rgb, decoded), psnr(rgb, decoded))
                    )
            for target in SERVICE_TARGETS:
                start = time.perf_counter()
                result = codec.compress(rgb, Target("msssim", target))
                out.service_seconds.append(time.perf_counter() - start)
                size, raw = len(result.bitstream), raw_size(result.bitstream)
                setting = round(1000 * target)
                out.points.append(
                    Point(path.stem, SERVICE, setting, size, result.bpp, result.msssim, result.psnr, raw)
                )
                if target in VIEWER_TARGETS:
                    row = same_bytes_row(rgb, result.reconstruction, size)
                    out.viewer[f"{path.stem}@{target}"] = row
                if target == max(SERVICE_TARGETS):
                    out.service_met.setdefault(path.stem, {})["msssim"] = result.target_met
                if target not in THRESHOLDS:
                    continue
                out.coded_against_raw[f"{path.stem}@{target}"] = (size, raw)
                row: dict[str, int | None] = {OURS: size if result.target_met else None}
                uniform = [
                    p.bytes
                    for p in out.points
                    if p.image == path.stem and p.codec == OURS and p.msssim >= target
                ]
                row["uniform"] = min(uniform, default=None)
                for name in CLASSIC_CODECS:
                    row[name] = smallest_reaching(name, rgb, target)
                out.headline[f"{path.stem}@{target}"] = row
            measure_psnr_targets(codec, path.stem, rgb, out)
            for target in BPP_TARGETS:
                out.bpp_achieved[f"{path.stem}@{target}"] = codec.compress(rgb, Target("bpp", target)).bpp
    return out


def curves(points: list[Point]) -> dict[str, dict[int, dict[str, float]]]:
    """Mean bpp, MS-SSIM, PSNR (and raw bpp for ours) over images, per codec and setting."""
    grouped: dict[str, dict[int, list[Point]]] = defaultdict(lambda: defaultdict(list))
    for p in points:
        if math.isfinite(p.psnr):  # a lossless file (AVIF at 100 on some images) is no point of a curve
            grouped[p.codec][p.setting].append(p)
    return {
        codec: {
            setting: {
                "bpp": float(np.mean([p.bpp for p in ps])),
                "raw_bpp": float(np.mean([8 * p.raw_bytes / (p.bytes * 8 / p.bpp) for p in ps])),
                "msssim": float(np.mean([p.msssim for p in ps])),
                "psnr": float(np.mean([p.psnr for p in ps])),
            }
            for setting, ps in sorted(by_setting.items())
        }
        for codec, by_setting in grouped.items()
    }


def monotone(curve: dict[int, dict[str, float]]) -> list[dict[str, float]]:
    """The points of a curve whose MS-SSIM rises with bpp: iterations past the trained count that lose
    quality are left out (nobody would pay more bits for less)."""
    kept: list[dict[str, float]] = []
    for point in sorted(curve.values(), key=lambda p: p["bpp"]):
        if not kept or point["msssim"] > kept[-1]["msssim"]:
            kept.append(point)
    return kept


def _bd(reference: list[dict[str, float]], test: list[dict[str, float]]) -> dict[str, float]:
    """BD-rates of ``test`` against ``reference`` on MS-SSIM (dB) and on PSNR."""
    return {
        "msssim_db": bd_rate(
            [p["bpp"] for p in reference],
            [msssim_db(p["msssim"]) for p in reference],
            [p["bpp"] for p in test],
            [msssim_db(p["msssim"]) for p in test],
        ),
        "psnr": bd_rate(
            [p["bpp"] for p in reference],
            [p["psnr"] for p in reference],
            [p["bpp"] for p in test],
            [p["psnr"] for p in test],
        ),
    }


def bd_rates(curve: dict[str, dict[int, dict[str, float]]], test: str, ref: str) -> dict[str, float]:
    """BD-rates between the mean curves (means over images at each setting)."""
    return _bd(monotone(curve[ref]), monotone(curve[test]))


def bd_rates_per_image(points: list[Point], test: str, ref: str) -> tuple[dict[str, float], int]:
    """The mean over images of each image's own BD-rates, and how many images it averages (those where
    both curves have at least 4 rising points over a common quality range)."""
    values: dict[str, list[float]] = defaultdict(list)
    used = 0
    for image in sorted({p.image for p in points}):
        curve = curves([p for p in points if p.image == image])
        reference, tested = monotone(curve[ref]), monotone(curve[test])
        if min(len(reference), len(tested)) < 4:
            continue
        rates = _bd(reference, tested)
        if any(math.isnan(v) for v in rates.values()):
            continue
        used += 1
        for key, value in rates.items():
            values[key].append(value)
    return {key: float(np.mean(v)) for key, v in values.items()}, used


def bpp_at_quality(curve: dict[int, dict[str, float]], target: float) -> float | None:
    """Our mean bpp at a mean MS-SSIM, interpolating in log-bpp between settings."""
    pts = [(p["msssim"], math.log(p["bpp"])) for p in monotone(curve)]
    qualities = [q for q, _ in pts]
    if not qualities[0] <= target <= qualities[-1]:
        return None
    return float(math.exp(np.interp(target, qualities, [r for _, r in pts])))


def plot(curve: dict[str, dict[int, dict[str, float]]], path: Path, title: str = "Kodak") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    style = {
        OURS: {"linewidth": 2.5, "color": "black"},
        SERVICE: {"linewidth": 2.5, "color": "crimson"},
        SERVICE_PSNR: {"linewidth": 2.5, "color": "darkviolet"},
    }
    label = {
        OURS: "ours (residual GRU alone, uniform iterations)",
        SERVICE: "ours, as the service compresses for MS-SSIM targets",
        SERVICE_PSNR: "ours, as the service compresses for PSNR targets",
    }
    for codec, by_setting in curve.items():
        pts = [p for p in sorted(by_setting.values(), key=lambda p: p["bpp"]) if p["bpp"] <= MAX_BPP + 0.1]
        bpps = [p["bpp"] for p in pts]
        looks = {"marker": ".", "label": label.get(codec, codec), **style.get(codec, {})}
        left.plot(bpps, [msssim_db(p["msssim"]) for p in pts], **looks)
        right.plot(bpps, [p["psnr"] for p in pts], **looks)
    for name, published in PUBLISHED.items() if title == "Kodak" else ():
        left.plot(
            [b for b, _ in published],
            [msssim_db(q) for _, q in published],
            "x--",
            label=f"{name} (published)",
        )
    left.set(xlabel="bits per pixel", ylabel="MS-SSIM (dB)", title=f"{title}: MS-SSIM", xlim=(0, MAX_BPP))
    right.set(xlabel="bits per pixel", ylabel="PSNR (dB)", title=f"{title}: PSNR (RGB)", xlim=(0, MAX_BPP))
    left.axhline(msssim_db(0.99), color="grey", linestyle=":", linewidth=1)
    right.axhline(PSNR_TARGET, color="grey", linestyle=":", linewidth=1)
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _percent(value: float) -> str:
    return "no overlap" if math.isnan(value) else f"{value:+.1f}%"


def ceiling(m: Measurements) -> list[str]:
    """The best quality each image reaches, and whether the service meets the top targets on it."""
    images = sorted({p.image for p in m.points})
    lines = [
        "## Ceiling: the best quality each image reaches",
        "",
        "Best MS-SSIM and PSNR over every uniform iteration count the model offers; `0.99 met` and",
        f"`{PSNR_TARGET:g} dB met`: `POST /compress` with `msssim=0.99` / `psnr={PSNR_TARGET:g}` answered",
        '`"met": true` (quality measured on the decoded image).',
        "",
        f"| image | best MS-SSIM | best PSNR | bpp at the best | 0.99 met | {PSNR_TARGET:g} dB met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    best_ssim, best_psnr = [], []
    for image in images:
        ours = [p for p in m.points if p.image == image and p.codec == OURS]
        top = max(ours, key=lambda p: p.msssim)
        best_ssim.append(top.msssim)
        best_psnr.append(max(p.psnr for p in ours))
        met = m.service_met.get(image, {})
        shown = ["yes" if met.get(k) else "no" for k in ("msssim", "psnr")]
        lines.append(
            f"| {image} | {top.msssim:.4f} | {best_psnr[-1]:.2f} | {top.bpp:.3f} | {shown[0]} | {shown[1]} |"
        )
    n = len(images)
    reach = [f"MS-SSIM {q}: {sum(v >= q for v in best_ssim)} of {n}" for q in CEILING_MSSSIM]
    reach += [f"PSNR {q:g} dB: {sum(v >= q for v in best_psnr)} of {n}" for q in CEILING_PSNR]
    met_counts = [sum(m.service_met.get(i, {}).get(k, False) for i in images) for k in ("msssim", "psnr")]
    lines += [
        "",
        f"Reached: {', '.join(reach)}. Through `POST /compress`: `msssim=0.99` met on {met_counts[0]} of {n},"
        f" `psnr={PSNR_TARGET:g}` on {met_counts[1]} of {n}. Means of the best: MS-SSIM"
        f" {np.mean(best_ssim):.4f}, PSNR {np.mean(best_psnr):.2f} dB.",
        "",
    ]
    return lines


def viewer_section(m: Measurements) -> list[str]:
    """Jumps between smooth patches and mean CIEDE2000 of ours, JPEG and WebP at the same bytes."""
    images = sorted({p.image for p in m.points})
    names = ["ours", *VIEWER_CODECS]
    lines = [
        "## What a viewer sees: patch jumps and colour error at the same bytes",
        "",
        "For each image, ours as `POST /compress` writes it for `msssim=<target>`, and JPEG 4:2:0 and WebP",
        "at the largest quality whose file is not larger than our bitstream (`benchmarks/viewer.py`).",
        "*Jumps*: adjacent 32-px patches, both smooth in the original (L std < 6), whose decoded mean-Lab",
        "offsets differ by more than 2.3 ΔE (one just-noticeable difference); *CIEDE2000*: mean over pixels",
        "(`benchmarks/colour.py`). Picture sheet: [viewer_sheet.png](viewer_sheet.png).",
        "",
        "*Blocking*: luma steps across the 8-px grid over those elsewhere, minus the original's ratio",
        "(`benchmarks/colour.grid_blocking`; 0: the grid does not show). *Edges*: at the original's",
        "strongest edges (the top 5 % of luma gradients), the mean turn of their direction in degrees (an",
        "8×8 staircase turns a diagonal edge towards the grid's axes) and the mean |luma error| within 2 px",
        "of them (`benchmarks/colour.edge_fidelity`). Every mean is over the same images: those on which",
        "JPEG and WebP can go as small as ours (`benchmarks/viewer.compared_rows`; the images column says",
        "how many).",
        "",
        "| target | codec | jumps | largest | images with a jump | mean CIEDE2000 | blocking "
        "| edge turn ° | edge error | bytes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for target in VIEWER_TARGETS:
        rows = [m.viewer[f"{image}@{target}"] for image in images if f"{image}@{target}" in m.viewer]
        compared = compared_rows(rows)
        for name in names:
            scores = [r[name] for r in compared]
            if not scores:
                continue
            lines.append(
                f"| {target} | {name} | {sum(s.jumps for s in scores)} | "
                f"{max(s.largest_jump for s in scores):.1f} | {sum(s.jumps > 0 for s in scores)} of "
                f"{len(scores)} | {np.mean([s.ciede2000 for s in scores]):.2f} | "
                f"{np.mean([s.blocking for s in scores]):+.2f} | "
                f"{np.mean([s.edge_direction for s in scores]):.2f} | "
                f"{np.mean([s.edge_error for s in scores]):.2f} | {sum(s.bytes for s in scores)} |"
            )
    lines.append("")
    return lines


def report(
    m: Measurements, model: str, command: str, title: str = "Kodak", plot_file: str = "rd_kodak.png"
) -> str:
    curve = curves(m.points)
    codecs = list(curve)
    images = sorted({p.image for p in m.points})
    remeasured = (
        f" (the curve for PSNR targets measured again alone on {m.psnr_targets_remeasured}, after a change"
        " to them only; the other codecs are deterministic)"
        if m.psnr_targets_remeasured
        else ""
    )
    lines = [
        f"# Results: rate-distortion on {title}",
        "",
        f"Generated by `{command}` ({time.strftime('%Y-%m-%d')}, model `{model}`): all codecs in the same",
        f"run on the same {len(images)} images{remeasured}. Our sizes are real service bitstreams (format",
        f"{FORMAT_VERSION}, or {DEBLOCKED_FORMAT_VERSION} where compress left the chroma filter out; format "
        f"{REFINED_FORMAT_VERSION} where it chose the refinement layer, the 8×8 DCT coder of "
        "docs/decisions.md 28-31).",
        "MS-SSIM is `tf.image.ssim_multiscale` on RGB, max_val=255 (`service/codec/quality.py`: the same",
        "computation with a separable window, equal to TF's function to 5e-6); dB = -10·log10(1-MS-SSIM);",
        "means over images.",
        "",
        f"![rate-distortion on {title}]({plot_file})",
        "",
        *ceiling(m),
        "## BD-rate (negative: fewer bits at equal quality)",
        "",
        "| test against reference | on MS-SSIM (dB) | on PSNR |",
        "| --- | --- | --- |",
    ]
    baselines = [c for c in codecs if c not in OUR_CURVES]
    pairs = [(ours, ref) for ours in OUR_CURVES if ours in curve for ref in baselines] + [(SERVICE, OURS)]
    pairs += [(test, "JPEG 4:2:0") for test in baselines if test != "JPEG 4:2:0"]
    for test, ref in pairs:
        r = bd_rates(curve, test, ref)
        lines.append(f"| {test} against {ref} | {_percent(r['msssim_db'])} | {_percent(r['psnr'])} |")
    lines += [
        "",
        "Per image (each image's own curves, then the mean over images; this credits rate control for",
        "placing bits within an image but not for giving every image the same quality):",
        "",
        "| test against reference | on MS-SSIM (dB) | on PSNR | images |",
        "| --- | --- | --- | --- |",
    ]
    for test, ref in pairs:
        r, used = bd_rates_per_image(m.points, test, ref)
        shown = [_percent(r.get(k, float("nan"))) for k in ("msssim_db", "psnr")]
        lines.append(f"| {test} against {ref} | {shown[0]} | {shown[1]} | {used} |")
    lines += [
        "",
        f"`ours`: every image at one uniform iteration count (1 … {max(curve[OURS])}), the paper's curve.",
        f"`{SERVICE}`: the bitstreams `POST /compress` writes for `msssim=<target>`, targets",
        f"{', '.join(str(t) for t in SERVICE_TARGETS)} (rate control spends the bits where they raise",
        "MS-SSIM most; an image that cannot reach a target contributes its best).",
        f"`{SERVICE_PSNR}`: the bitstreams `POST /compress` writes for `psnr=<target>`, targets",
        f"{', '.join(f'{t:g}' for t in SERVICE_PSNR_TARGETS)} dB. Compress picks the network or the",
        "refinement layer per image (docs/decisions.md 29), so these two curves mix both; `ours` is the",
        "network alone. Curves keep the points whose mean MS-SSIM still rises (`monotone`); BD-rates",
        "integrate over the quality range both curves of a pair cover. Mean curves average images at",
        "different settings: for the service's curves, whose every image sits at its target, the",
        "per-image table is the fairer one.",
        "",
    ]
    if title == "Kodak":
        lines += [
            "## Against the published curves (bpp at the same mean MS-SSIM)",
            "",
            "| work | MS-SSIM | their bpp | our bpp, uniform | our bpp, rate control |",
            "| --- | --- | --- | --- | --- |",
        ]
    for name, published in PUBLISHED.items() if title == "Kodak" else ():
        for bpp, quality in published:
            ours = [bpp_at_quality(curve[c], quality) for c in (OURS, SERVICE)]
            shown = " | ".join("not reached" if b is None else f"{b:.3f}" for b in ours)
            lines.append(f"| {name} | {quality} | {bpp} | {shown} |")

    lines += ["", "## Bytes per image at a target MS-SSIM", ""]
    lines += [
        "`ours`: the bitstream `POST /compress` writes for `msssim=<target>` (rate control included);",
        "`uniform`: the smallest uniform iteration count reaching the target; baselines: the smallest file",
        "whose quality, searched per image (bisection on 1..100), reaches the target. — = not reached.",
        "",
    ]
    names = [OURS, "uniform", *CLASSIC_CODECS]
    for threshold in THRESHOLDS:
        rows = {image: m.headline[f"{image}@{threshold}"] for image in images}
        lines += [
            f"### MS-SSIM ≥ {threshold}",
            "",
            "| image | " + " | ".join(names) + " |",
            "|---" * (len(names) + 1) + "|",
        ]
        for image, row in rows.items():
            lines.append(
                f"| {image} | " + " | ".join("—" if row[n] is None else str(row[n]) for n in names) + " |"
            )
        # The uniform curve stops where the network does; ours can go on (the refinement layer), so
        # ours against the classic codecs is also totalled without it.
        previous_total_images = None
        for label, columns in (
            ("all reach it", names),
            ("ours and the classic codecs reach it", [OURS, *CLASSIC_CODECS]),
        ):
            common = [i for i in images if all(rows[i][n] is not None for n in columns)]
            if common == previous_total_images:
                continue
            previous_total_images = common
            totals = {n: sum(rows[i][n] for i in common) if n in columns else None for n in names}
            lines.append(
                f"| **total, {len(common)} images {label}** | "
                + " | ".join("—" if totals[n] is None else str(totals[n]) for n in names)
                + " |"
            )
            if common:
                lines.append(
                    "| **ours against it** | — | "
                    + " | ".join(
                        "—" if totals[n] is None else f"{100 * (totals[OURS] / totals[n] - 1):+.1f}%"
                        for n in names[1:]
                    )
                    + " |"
                )
        lines.append("")

    lines += viewer_section(m)
    lines += [
        "## Size targets",
        "",
        "`POST /compress` with `bpp=<target>`: the bitstream's bpp against the target, over all images.",
        "",
        "| target bpp | mean achieved | min | max | within 5 % below |",
        "| --- | --- | --- | --- | --- |",
    ]
    for target in BPP_TARGETS if m.bpp_achieved else ():
        got = np.array([m.bpp_achieved[f"{image}@{target}"] for image in images])
        within = int(np.sum((got <= target) & (got >= 0.95 * target)))
        lines.append(
            f"| {target} | {got.mean():.3f} | {got.min():.3f} | {got.max():.3f} | {within} of {len(got)} |"
        )
    lines += [
        "",
        "## Entropy coding against raw bits, by iteration count",
        "",
        "| iterations | bpp | raw bpp (format 1) | saved | MS-SSIM | PSNR |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for n, p in curve[OURS].items():
        lines.append(
            f"| {n} | {p['bpp']:.3f} | {p['raw_bpp']:.3f} | {100 * (1 - p['bpp'] / p['raw_bpp']):.1f}% | "
            f"{p['msssim']:.4f} | {p['psnr']:.2f} |"
        )
    lines += [
        "",
        "## Entropy coding at the MS-SSIM targets",
        "",
        "The bitstreams `POST /compress` wrote for `msssim=<target>` (rate control included) against the",
        "same bitstreams with raw bits, over the images that reach the target.",
        "",
        "| target | coded bytes | raw bytes | saved |",
        "| --- | --- | --- | --- |",
    ]
    for threshold in THRESHOLDS:
        pairs = [
            m.coded_against_raw[f"{image}@{threshold}"]
            for image in images
            if m.headline[f"{image}@{threshold}"][OURS] is not None
            and f"{image}@{threshold}" in m.coded_against_raw
        ]
        coded, raw = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
        if raw:
            lines.append(f"| {threshold} | {coded} | {raw} | {100 * (1 - coded / raw):.1f}% |")
    if m.service_seconds:
        lines += [
            "",
            "Median `compress` time per image and MS-SSIM target (in-process, embedded backend, 2-core CPU): "
            f"{np.median(m.service_seconds):.2f} s.",
        ]
    lines.append("")
    return "\n".join(lines)


def measure_psnr_targets(codec: ImageCodec, stem: str, rgb: np.ndarray, out: Measurements) -> None:
    """The service's bitstreams for every PSNR target on one image, into ``out``."""
    for target in SERVICE_PSNR_TARGETS:
        result = codec.compress(rgb, Target("psnr", target))
        size, raw = len(result.bitstream), raw_size(result.bitstream)
        setting = round(10 * target)
        out.points.append(
            Point(stem, SERVICE_PSNR, setting, size, result.bpp, result.msssim, result.psnr, raw)
        )
        if target == PSNR_TARGET:
            out.service_met.setdefault(stem, {})["psnr"] = result.target_met


def remeasure_psnr_targets(
    measurements: Measurements, images: list[tuple[str, np.ndarray]], settings: Settings, label: str
) -> Measurements:
    """``measurements`` with the PSNR-target curve measured again (after a change that touches only
    it; the other codecs' points, deterministic, are kept)."""
    measurements.points = [p for p in measurements.points if p.codec != SERVICE_PSNR]
    measurements.psnr_targets_remeasured = time.strftime("%Y-%m-%d %H:%M")
    with embedded_codec(settings) as (codec, _):
        for name, rgb in tqdm(images, desc=label, unit="image"):
            measure_psnr_targets(codec, Path(name).stem, rgb, measurements)
    return measurements


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=("kodak", "validation", "both"), default="both")
    parser.add_argument("--kodak", type=Path, default=KODAK)
    parser.add_argument("--train", type=Path, default=TRAIN, help="the folder the validation split is of")
    parser.add_argument("--images", type=int, default=0, help="use the first N images of each set")
    parser.add_argument(
        "--iterations", type=int, default=0, help="uniform curve length (default: all offered)"
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs")
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the reports from the last run's var/*.json"
    )
    parser.add_argument(
        "--psnr-targets-only",
        action="store_true",
        help="measure only the PSNR-target curve again, the rest from the last run's var/*.json",
    )
    args = parser.parse_args(argv)

    settings = Settings()
    iterations = args.iterations or settings.max_iterations
    sets = {
        "kodak": ("Kodak", "results.md", "rd_kodak", lambda: load_folder(args.kodak)),
        "validation": (
            "the validation split",
            "results_validation.md",
            "rd_validation",
            lambda: load_validation_images(args.train),
        ),
    }
    chosen = list(sets) if args.set == "both" else [args.set]
    args.out.mkdir(parents=True, exist_ok=True)
    for key in chosen:
        title, results, stem, load = sets[key]
        raw = PROJECT_ROOT / "var" / f"{stem}.json"
        if args.report_only:
            measurements = load_measurements(raw)
        elif args.psnr_targets_only:
            images = load()[: args.images or None]
            measurements = remeasure_psnr_targets(load_measurements(raw), images, settings, title)
            raw.write_text(json.dumps(asdict(measurements)))
        else:
            measurements = measure(load()[: args.images or None], iterations, settings, title)
            raw.parent.mkdir(parents=True, exist_ok=True)
            raw.write_text(json.dumps(asdict(measurements)))
        plot(curves(measurements.points), args.out / f"{stem}.png", title)
        model = f"{settings.model_name}/{measurements.model_version}"
        text = report(measurements, model, "make bench", title, f"{stem}.png")
        (args.out / results).write_text(text)
        print(text)


if __name__ == "__main__":
    main()
