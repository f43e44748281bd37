"""Latency of compress and decompress through HTTP, with where the time goes, at the default target and at
msssim=0.95 (the seed's operating point) in the same run.

    python -m benchmarks.latency [--images 24] [--targets default msssim=0.95]      # or: make latency

Starts the service as `make run` does (gateway + embedded backend on loopback), sends each Kodak image
once as a warm-up and then measures. Split per request: model compute (reported by the embedded
backend), gRPC transport and (de)serialisation (backend call time less compute), and gateway work
(the rest of the client-measured latency: HTTP, image decoding, rate control, metrics, entropy coding).
Also the codec's own cost per image: the first pass's encode plus decompress's model compute.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from tqdm import tqdm

from benchmarks.rd_kodak import KODAK
from benchmarks.service_process import running_service
from service.codec.rate_control import parse_target
from service.settings import Settings


def _png(path: Path) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def _server_timing(header: str) -> dict[str, float]:
    parts = (p.strip().split(";dur=") for p in header.split(",") if ";dur=" in p)
    return {name: float(ms) / 1000 for name, ms in parts}


def _summary(name: str, rows: list[dict[str, float]]) -> str:
    total = np.array([r["total"] for r in rows])
    compute = np.array([r["compute"] for r in rows])
    transport = np.array([r["call"] - r["compute"] for r in rows])
    gateway = total - compute - transport
    share = (transport.sum() + gateway.sum()) / total.sum()
    return (
        f"| {name} | {np.median(total):.3f} | {np.percentile(total, 95):.3f} | {np.median(compute):.3f} | "
        f"{np.median(transport):.3f} | {np.median(gateway):.3f} | {100 * share:.1f} % |"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument(
        "--targets", nargs="+", default=["default", "msssim=0.95"], help="kind=value, or default (no field)"
    )
    args = parser.parse_args(argv)
    paths = sorted(KODAK.glob("*.png"))[: args.images]
    with running_service() as (url, _), httpx.Client(base_url=url, timeout=300) as client:
        client.post("/compress", files={"image": ("w.png", _png(paths[0]), "image/png")})  # warm-up
        for target in args.targets:
            print(_measure(client, paths, target))
            print()


def _measure(client: httpx.Client, paths: list[Path], target: str) -> str:
    """Each image compressed at ``target`` and decompressed: the table of where the time went."""
    fields = {}
    if target != "default":
        parsed = parse_target(target)
        fields = {parsed.kind: str(parsed.value)}
    named = f"the default target ({Settings().default_target})" if target == "default" else target
    compress_rows, decompress_rows, missed = [], [], 0
    for path in tqdm(paths, desc=f"latency at {target}", unit="image"):
        body = _png(path)
        response = client.post("/compress", files={"image": (path.name, body, "image/png")}, data=fields)
        report = response.json()
        missed += not report["target"]["met"]
        t = report["timings"]
        compress_rows.append(  # a layer-only bitstream made no backend call: its parts are 0
            {
                "total": response.elapsed.total_seconds(),
                "call": t.get("backend_seconds", 0.0),
                "compute": t.get("model_compute_seconds", 0.0),
                "entropy": t.get("entropy_coding_seconds", 0.0),
                "encode": t.get("encode_seconds", 0.0),
                "layer": t.get("refinement_seconds", 0.0),
            }
        )
        response = client.get(report["urls"]["decompress"])
        t = _server_timing(response.headers["Server-Timing"])
        decompress_rows.append(
            {
                "total": response.elapsed.total_seconds(),
                "call": t.get("backend", 0.0),
                "compute": t.get("model_compute", 0.0),
                "entropy": t["entropy_decoding"],
                "layer": t.get("refinement", 0.0),
            }
        )
    encode = np.array([r["encode"] for r in compress_rows])
    layer_only = int((encode == 0).sum())
    decompress_total = sum(r["total"] for r in decompress_rows)
    decode = np.array([r["compute"] for r in decompress_rows])
    lines = [
        f"Kodak, {len(paths)} images, through HTTP with the embedded backend (2-core CPU); compress at "
        f"{named} ({missed} images could not reach it: their best is used).",
        "",
        "| request | median s | p95 s | model compute s (median) | gRPC transport + serialisation s | "
        "gateway s | gateway + transport share |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        _summary("compress", compress_rows),
        _summary("decompress", decompress_rows),
        "",
        "Entropy coding within compress: median "
        f"{np.median([r['entropy'] for r in compress_rows]):.3f} s, "
        f"{100 * sum(r['entropy'] for r in compress_rows) / sum(r['total'] for r in compress_rows):.1f} % "
        "of compress time; entropy decoding within decompress: median "
        f"{np.median([r['entropy'] for r in decompress_rows]):.3f} s, "
        f"{100 * sum(r['entropy'] for r in decompress_rows) / decompress_total:.1f} % of decompress time.",
        "",
        f"The refinement layer (the DCT coder: transform, step search and coefficient coding) within "
        f"compress: median {np.median([r['layer'] for r in compress_rows]):.3f} s; {layer_only} of "
        f"{len(paths)} images coded by the layer alone (no backend call); its decode within decompress: "
        f"median {np.median([r['layer'] for r in decompress_rows]):.3f} s.",
        "",
        "Codec cost per image (encode to the target, then decode): compress's first pass (the uniform "
        f"encode, a backend call) median {np.median(encode):.3f} s, decompress's model compute median "
        f"{np.median(decode):.3f} s; per image together median {np.median(encode + decode):.3f} s, "
        f"p95 {np.percentile(encode + decode, 95):.3f} s. The rest of compress is rate control's check "
        "of its allocation (a decode) and gateway work.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
