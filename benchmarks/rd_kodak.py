"""Rate-distortion on Kodak: our codec at every iteration count against JPEG 4:2:0, WebP and AVIF.

    python -m benchmarks.rd_kodak            # or: make bench

All codecs run in the same process on the same images. Our sizes are the real bitstreams the
service writes (``ImageCodec.bitstream``) and our images are the backend's decode of those bits,
through the embedded backend over loopback gRPC. MS-SSIM is ``tf.image.ssim_multiscale`` on RGB
in [0, 255] (max_val=255), PSNR on RGB. Writes docs/results.md and docs/rd_kodak.png.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from benchmarks.baselines import BASELINES, encode_decode
from benchmarks.bdrate import bd_rate
from service.backend.embedded import serve
from service.codec.quality import msssim, msssim_batch, psnr, psnr_batch
from service.settings import PROJECT_ROOT, Settings
from service.wiring import backend_client, image_codec

OURS = "ours"
KODAK = PROJECT_ROOT.parent / "shared" / "data" / "kodak"
THRESHOLDS = (0.90, 0.95)
#: Published Kodak points (bpp, MS-SSIM) of the original work and its successor.
PUBLISHED = {
    "Toderici et al. 2017": [(0.25, 0.904), (0.5, 0.954), (1.0, 0.980)],
    "Johnston et al. 2018": [(0.25, 0.947), (0.5, 0.974), (1.0, 0.988)],
}


@dataclass
class Point:
    image: str
    codec: str
    setting: int  # iterations for ours, quality for the baselines
    bytes: int
    bpp: float
    msssim: float
    psnr: float


def msssim_db(value: float) -> float:
    return -10.0 * math.log10(max(1.0 - value, 1e-10))


def measure(images: list[Path], iterations: int, settings: Settings) -> tuple[list[Point], dict[str, float]]:
    """Every codec at every setting on every image; also the encode time and the model version used."""
    server = serve(settings.model_config_file, "127.0.0.1", 0, settings.grpc_max_message_bytes)
    client = backend_client(settings, f"127.0.0.1:{server.bound_port}")
    codec = image_codec(settings, client)
    points: list[Point] = []
    encode_seconds = []
    try:
        for path in tqdm(images, desc="Kodak", unit="image"):
            rgb = np.asarray(Image.open(path).convert("RGB"))
            pixels = rgb.shape[0] * rgb.shape[1]
            encoding = codec.encode(rgb, iterations)
            encode_seconds.append(encoding.seconds)
            recon = np.stack([encoding.reconstruction(n) for n in range(1, iterations + 1)])
            scores, psnrs = msssim_batch(rgb, recon), psnr_batch(rgb, recon)
            patches = encoding.geometry.patches
            for n in range(1, iterations + 1):
                size = len(codec.bitstream(encoding, np.full(patches, n, np.uint8)))
                points.append(Point(path.stem, OURS, n, size, 8 * size / pixels, scores[n - 1], psnrs[n - 1]))
            for name, (_, qualities) in BASELINES.items():
                for quality in qualities:
                    size, decoded = encode_decode(name, rgb, quality)
                    points.append(
                        Point(
                            path.stem,
                            name,
                            quality,
                            size,
                            8 * size / pixels,
                            msssim(rgb, decoded),
                            psnr(rgb, decoded),
                        )
                    )
    finally:
        client.close()
        server.stop(grace=None)
    return points, {
        "encode_seconds_per_image_at_max_iterations": float(np.median(encode_seconds)),
        "model_version": encoding.version,
    }


def curves(points: list[Point]) -> dict[str, dict[int, dict[str, float]]]:
    """Mean bpp, MS-SSIM and PSNR over images, per codec and setting."""
    grouped: dict[str, dict[int, list[Point]]] = defaultdict(lambda: defaultdict(list))
    for p in points:
        grouped[p.codec][p.setting].append(p)
    return {
        codec: {
            setting: {
                "bpp": float(np.mean([p.bpp for p in ps])),
                "msssim": float(np.mean([p.msssim for p in ps])),
                "psnr": float(np.mean([p.psnr for p in ps])),
            }
            for setting, ps in sorted(by_setting.items())
        }
        for codec, by_setting in grouped.items()
    }


def bd_rates(curve: dict[str, dict[int, dict[str, float]]], test: str, ref: str) -> dict[str, float]:
    a, b = list(curve[ref].values()), list(curve[test].values())
    return {
        "msssim_db": bd_rate(
            [p["bpp"] for p in a],
            [msssim_db(p["msssim"]) for p in a],
            [p["bpp"] for p in b],
            [msssim_db(p["msssim"]) for p in b],
        ),
        "psnr": bd_rate(
            [p["bpp"] for p in a], [p["psnr"] for p in a], [p["bpp"] for p in b], [p["psnr"] for p in b]
        ),
    }


def bytes_to_reach(points: list[Point], threshold: float) -> dict[str, dict[str, int | None]]:
    """Per codec and image: the fewest bytes among settings reaching MS-SSIM ``threshold``."""
    best: dict[str, dict[str, int | None]] = defaultdict(dict)
    for p in points:
        current = best[p.codec].get(p.image)
        if p.msssim >= threshold and (current is None or p.bytes < current):
            best[p.codec][p.image] = p.bytes
        else:
            best[p.codec].setdefault(p.image, None)
    return best


def bpp_at_quality(curve: dict[int, dict[str, float]], target: float) -> float | None:
    """Our mean bpp at a mean MS-SSIM, interpolating in log-bpp between settings."""
    pts = sorted((p["msssim"], math.log(p["bpp"])) for p in curve.values())
    qualities = [q for q, _ in pts]
    if not qualities[0] <= target <= qualities[-1]:
        return None
    return float(math.exp(np.interp(target, qualities, [r for _, r in pts])))


def plot(curve: dict[str, dict[int, dict[str, float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for codec, by_setting in curve.items():
        pts = sorted(by_setting.values(), key=lambda p: p["bpp"])
        pts = [p for p in pts if p["bpp"] <= 2.1]
        style = {"linewidth": 2.5, "color": "black"} if codec == OURS else {}
        label = "ours (residual GRU)" if codec == OURS else codec
        left.plot(
            [p["bpp"] for p in pts], [msssim_db(p["msssim"]) for p in pts], marker=".", label=label, **style
        )
        right.plot([p["bpp"] for p in pts], [p["psnr"] for p in pts], marker=".", label=label, **style)
    for name, published in PUBLISHED.items():
        left.plot(
            [b for b, _ in published],
            [msssim_db(q) for _, q in published],
            "x--",
            label=f"{name} (published)",
        )
    left.set(xlabel="bits per pixel", ylabel="MS-SSIM (dB)", title="Kodak: MS-SSIM", xlim=(0, 2))
    right.set(xlabel="bits per pixel", ylabel="PSNR (dB)", title="Kodak: PSNR (RGB)", xlim=(0, 2))
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _percent(value: float) -> str:
    return "no overlap" if math.isnan(value) else f"{value:+.1f}%"


def report(points: list[Point], extra: dict[str, float], model: str, command: str) -> str:
    curve = curves(points)
    codecs = list(curve)
    lines = [
        "# Results: rate-distortion on Kodak",
        "",
        f"Generated by `{command}` ({time.strftime('%Y-%m-%d')}, model `{model}`). All codecs ran in the",
        f"same run on the same {len({p.image for p in points})} images. Our sizes are real "
        "service bitstreams (format v1, raw bits, uniform iterations).",
        "MS-SSIM: `tf.image.ssim_multiscale`, RGB, max_val=255; dB = -10·log10(1-MS-SSIM).",
        "Means over images.",
        "",
        "![rate-distortion on Kodak](rd_kodak.png)",
        "",
        "## BD-rate (negative: fewer bits at equal quality)",
        "",
        "| ours against | on MS-SSIM (dB) | on PSNR |",
        "| --- | --- | --- |",
    ]
    for ref in codecs:
        if ref != OURS:
            r = bd_rates(curve, OURS, ref)
            lines.append(f"| {ref} | {_percent(r['msssim_db'])} | {_percent(r['psnr'])} |")
    lines += ["", "| against JPEG 4:2:0 | on MS-SSIM (dB) | on PSNR |", "| --- | --- | --- |"]
    for test in codecs:
        if test != "JPEG 4:2:0":
            r = bd_rates(curve, test, "JPEG 4:2:0")
            lines.append(f"| {test} | {_percent(r['msssim_db'])} | {_percent(r['psnr'])} |")
    lines += [
        "",
        "## Against the published curves (bpp at the same mean MS-SSIM)",
        "",
        "| work | MS-SSIM | their bpp | our bpp |",
        "| --- | --- | --- | --- |",
    ]
    for name, published in PUBLISHED.items():
        for bpp, quality in published:
            ours = bpp_at_quality(curve[OURS], quality)
            lines.append(
                f"| {name} | {quality} | {bpp} | {'not reached' if ours is None else f'{ours:.3f}'} |"
            )
    lines += ["", "## Bytes per image to reach an MS-SSIM", ""]
    for threshold in THRESHOLDS:
        best = bytes_to_reach(points, threshold)
        images = sorted({p.image for p in points})
        lines += [
            f"### MS-SSIM ≥ {threshold}",
            "",
            "| image | " + " | ".join(codecs) + " |",
            "|---" * (len(codecs) + 1) + "|",
        ]
        for image in images:
            cells = [str(best[c][image]) if best[c][image] is not None else "—" for c in codecs]
            lines.append(f"| {image} | " + " | ".join(cells) + " |")
        common = [i for i in images if all(best[c][i] is not None for c in codecs)]
        totals = [sum(best[c][i] for i in common) for c in codecs]
        lines.append(
            f"| **total ({len(common)} images all reach it)** | " + " | ".join(str(t) for t in totals) + " |"
        )
        lines.append("")
    lines += ["## Our curve", "", "| iterations | bpp | MS-SSIM | PSNR |", "| --- | --- | --- | --- |"]
    for n, p in curve[OURS].items():
        lines.append(f"| {n} | {p['bpp']:.3f} | {p['msssim']:.4f} | {p['psnr']:.2f} |")
    lines += [
        "",
        f"Median encode time per image at the largest iteration count: "
        f"{extra['encode_seconds_per_image_at_max_iterations']:.2f} s (embedded backend, 2-core CPU).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kodak", type=Path, default=KODAK)
    parser.add_argument("--images", type=int, default=24, help="use the first N images")
    parser.add_argument("--iterations", type=int, default=16)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs")
    args = parser.parse_args(argv)

    settings = Settings()
    images = sorted(args.kodak.glob("*.png"))[: args.images]
    points, extra = measure(images, args.iterations, settings)
    args.out.mkdir(parents=True, exist_ok=True)
    raw = PROJECT_ROOT / "var" / "rd_kodak.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps([asdict(p) for p in points]))
    plot(curves(points), args.out / "rd_kodak.png")
    text = report(points, extra, f"{settings.model_name}/{extra['model_version']}", "make bench")
    (args.out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
