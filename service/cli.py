"""Command line: ``rgic serve | worker | compress | decompress | cut | info``.

Without ``RGIC_BACKEND_ADDRESS`` in the environment, ``serve`` starts the embedded backend in its
own process on loopback, and ``compress``/``decompress`` start it in-process; with it, they use that
TensorFlow Serving.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from service.codec.rate_control import PRESETS, choose_target
from service.settings import Settings, get_settings

if TYPE_CHECKING:
    from service.codec.run import Progress

__all__ = ["main"]

BITSTREAM_SUFFIX = ".rgic"
#: Images from this size on get a progress bar of their own (stage and share done).
BIG_IMAGE_PIXELS = 4_000_000


def _check_port_free(host: str, port: int) -> None:
    """Exit with a clear message if ``host:port`` is taken, before spending seconds loading the model."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as error:
            message = f"cannot serve on {host}:{port}: {error.strerror}; set PORT to another port"
            raise SystemExit(message) from error


@contextlib.contextmanager
def _backend_unless_configured(settings: Settings) -> Iterator[Settings]:
    """``settings`` as given when ``RGIC_BACKEND_ADDRESS`` is set; otherwise with the address of an
    embedded backend started (and restarted if it dies) for as long as the block runs."""
    if "RGIC_BACKEND_ADDRESS" in os.environ:
        yield settings
        return
    from service.backend.supervisor import BackendSupervisor

    print("starting the embedded backend (loading the model)...", flush=True)
    backend = BackendSupervisor(settings.model_config_file)
    try:
        try:
            backend.start()
        except RuntimeError as error:
            raise SystemExit(str(error)) from error
        print(f"embedded backend on {backend.address} (restarted if it dies)", flush=True)
        yield settings.model_copy(update={"backend_address": backend.address})
    finally:
        backend.stop()


def _stop_on_sigterm() -> None:
    def stop_requested(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # uvicorn installs its own handlers once it runs; until then, clean up

    signal.signal(signal.SIGTERM, stop_requested)  # first: a stop during the imports is a clean stop too


def serve(args: argparse.Namespace) -> None:
    _stop_on_sigterm()
    try:
        _check_port_free(args.host, args.port)
        import uvicorn

        from service.main import create_app

        with _backend_unless_configured(get_settings()) as settings:
            app = create_app(settings)
            shown_host = "localhost" if args.host in ("0.0.0.0", "127.0.0.1") else args.host
            print(
                f"gateway: http://{shown_host}:{args.port}/  (API docs: /docs, metrics: /metrics)", flush=True
            )
            uvicorn.run(
                app,
                host=args.host,
                port=args.port,
                log_level="warning",
                log_config=None,
                timeout_graceful_shutdown=10,
            )
    except KeyboardInterrupt:
        print("stopped before the service was ready", flush=True)


def worker(args: argparse.Namespace) -> None:
    """Run queued jobs (``RGIC_JOBS_URL``) without serving HTTP, until SIGTERM or Ctrl-C."""
    _stop_on_sigterm()
    if not get_settings().jobs_url:
        raise SystemExit("rgic worker takes jobs from a queue: set RGIC_JOBS_URL=redis://host:port/0")
    import asyncio

    from service.api.deps import open_services
    from service.api.job_work import perform_for

    async def consume(settings: Settings) -> None:
        svc = open_services(settings, job_workers=args.concurrency)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await svc.jobs.start(perform_for(svc))
        print(f"worker: {args.concurrency} job(s) at once from {settings.jobs_url}", flush=True)
        try:
            await stop.wait()
        finally:
            await svc.jobs.close()
            svc.client.close()

    try:
        with _backend_unless_configured(get_settings()) as settings:
            asyncio.run(consume(settings))
    except KeyboardInterrupt:
        pass
    print("worker stopped", flush=True)


@contextlib.contextmanager
def _codec() -> Iterator[object]:
    from service.backend.embedded import serve as serve_embedded
    from service.wiring import backend_client, image_codec

    settings = get_settings()
    server = None
    address = settings.backend_address
    if "RGIC_BACKEND_ADDRESS" not in os.environ:
        server = serve_embedded(settings.model_config_file, "127.0.0.1", 0, settings.grpc_max_message_bytes)
        address = f"127.0.0.1:{server.bound_port}"
    client = backend_client(settings, address)
    try:
        yield image_codec(settings, client)
    finally:
        client.close()
        if server is not None:
            server.stop(grace=None)


def _output_path(source: Path, out_dir: Path | None, suffix: str) -> Path:
    return (out_dir or source.parent) / (source.stem + suffix)


def _for_each_file(paths: list[Path], description: str, work: Callable[[Path], str]) -> None:
    """Run ``work`` on every path with a progress bar, printing what it returns. A file that fails
    (unreadable, not an image, an invalid bitstream) is reported and the rest still run; the
    command then exits non-zero naming how many failed."""
    from service.errors import ServiceError

    failed = 0
    for path in tqdm(paths, desc=description, unit="file", disable=len(paths) < 2):
        try:
            tqdm.write(work(path))
        except ServiceError as error:
            failed += 1
            tqdm.write(f"{path}: error ({error.code}): {error.message}", file=sys.stderr)
        except OSError as error:
            failed += 1
            tqdm.write(f"{path}: error: {error.strerror or error}", file=sys.stderr)
    if failed:
        raise SystemExit(f"{failed} of {len(paths)} files failed")


@contextlib.contextmanager
def _stage_bar(name: str, shown: bool) -> Iterator[Progress | None]:
    """A progress bar of one big image's work (its stage and share done), or None for small ones."""
    if not shown:
        yield None
        return
    with tqdm(
        total=100, desc=name, unit="%", leave=False, bar_format="{desc}: {bar} {n:.0f}% {postfix}"
    ) as bar:

        def progress(stage: str, share: float) -> None:
            bar.n = round(100 * share)
            bar.set_postfix_str(stage, refresh=False)
            bar.refresh()

        yield progress


#: what ``rgic cut`` adds to the steps in a rung's file name, by how the rung is cut (``Rung.cut``)
CUT_SUFFIX = {"prefix": "", "per-patch": "p", "alternate": "a"}


def _ladder_path(bitstream: Path) -> Path:
    """Where ``rgic compress`` keeps a bitstream's quality ladder: beside it, ``<name>.ladder.json``."""
    return bitstream.with_suffix(".ladder.json")


def compress(args: argparse.Namespace) -> None:
    from service.codec.images import decode_image
    from service.codec.ladder import ladder_to_json, measure_ladder

    settings = get_settings()
    given = {k: getattr(args, k) for k in ("ssimulacra2", "quality", "msssim", "psnr", "bpp")}
    target = choose_target(given, settings.target)
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    with _codec() as codec:

        def one(path: Path) -> str:
            decoded = decode_image(path.read_bytes(), settings.max_pixels)
            pixels = decoded.rgb.shape[0] * decoded.rgb.shape[1]
            measured = pixels <= settings.ladder_max_pixels
            with _stage_bar(path.name, pixels >= BIG_IMAGE_PIXELS) as progress:
                result = codec.compress(decoded.rgb, target, progress, keep_frames=measured)
            out = _output_path(path, args.out_dir, BITSTREAM_SUFFIX)
            out.write_bytes(result.bitstream)
            met = "" if result.target_met else "  (target NOT met)"
            layer = (
                f" + refinement layer ({result.refinement_bytes} bytes)" if result.refinement_bytes else ""
            )
            ladder = ""
            if measured:
                rungs = measure_ladder(codec, result.bitstream, decoded.rgb, result)
                _ladder_path(out).write_text(json.dumps(ladder_to_json(rungs)))
                ladder = "\n  ladder: " + ", ".join(
                    f"{r.bytes} B MS-SSIM {r.msssim:.4f}{'' if r.cut == 'prefix' else f' ({r.cut})'}"
                    for r in rungs
                )
            return (
                f"{path} -> {out}: {len(result.bitstream)} bytes, {result.bpp:.4f} bpp, "
                f"SSIMULACRA 2 {result.ssimulacra2:.2f}, MS-SSIM {result.msssim:.4f}, "
                f"PSNR {result.psnr:.2f} dB, coder {result.coder}, "
                f"{result.iterations} iterations{layer}{met}{ladder}"
            )

        _for_each_file(args.images, "compressing", one)


def cut(args: argparse.Namespace) -> None:
    from service.codec.ladder import choose_rung, ladder_from_json, rung_bitstream

    ladder_file = _ladder_path(args.bitstream)
    if not ladder_file.exists():
        raise SystemExit(f"error: no quality ladder beside {args.bitstream} ({ladder_file.name})")
    rung = choose_rung(
        ladder_from_json(json.loads(ladder_file.read_text())), args.msssim, args.psnr, args.bytes
    )
    data = args.bitstream.read_bytes()
    name = f"{rung.steps}{CUT_SUFFIX[rung.cut]}"
    out = args.out or args.bitstream.with_name(f"{args.bitstream.stem}.{name}{BITSTREAM_SUFFIX}")
    with _codec() as codec:
        answer = rung_bitstream(codec, data, rung)
    out.write_bytes(answer)
    kind = {
        "prefix": f"{rung.steps} steps",
        "per-patch": f"each patch cut at its own count (at most {rung.steps})",
        "alternate": f"the network's bitstream compress coded beside it ({rung.steps} iterations at most)",
    }[rung.cut]
    print(f"{args.bitstream} -> {out}: {len(answer)} of {len(data)} bytes, {kind}, MS-SSIM {rung.msssim:.4f}")


def decompress(args: argparse.Namespace) -> None:
    from service.codec.bitstream import declared_pixels
    from service.codec.images import encode_png

    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    with _codec() as codec:

        def one(path: Path) -> str:
            data = path.read_bytes()
            with _stage_bar(path.name, declared_pixels(data) >= BIG_IMAGE_PIXELS) as progress:
                image = codec.decompress(data, progress).image
            out = _output_path(path, args.out_dir, ".png")
            out.write_bytes(encode_png(image, compress_level=6))
            return f"{path} -> {out}: {image.shape[1]}x{image.shape[0]}"

        _for_each_file(args.bitstreams, "decompressing", one)


def info(args: argparse.Namespace) -> None:
    from service.api.routes.bitstreams import header_info
    from service.codec.bitstream import Bitstream

    data = args.bitstream.read_bytes()
    print(json.dumps(header_info(Bitstream.from_bytes(data), len(data)), indent=2))


def main(argv: list[str] | None = None) -> None:
    from service.errors import ServiceError
    from service.logs import configure_logging

    parser = argparse.ArgumentParser(
        prog="rgic", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("serve", help="run the HTTP gateway (and the embedded backend)")
    p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p.set_defaults(run=serve)

    p = commands.add_parser("worker", help="run queued jobs (RGIC_JOBS_URL) without serving HTTP")
    p.add_argument("--concurrency", type=int, default=1, help="jobs run at once")
    p.set_defaults(run=worker)

    p = commands.add_parser(
        "compress", help="images to bitstreams (.rgic); default target: RGIC_DEFAULT_TARGET (ssimulacra2=70)"
    )
    p.add_argument("images", nargs="+", type=Path)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--ssimulacra2", type=float, help="minimum SSIMULACRA 2 (70: high quality)")
    group.add_argument("--quality", choices=list(PRESETS), help="a named SSIMULACRA 2 score")
    group.add_argument("--msssim", type=float)
    group.add_argument("--psnr", type=float)
    group.add_argument("--bpp", type=float)
    p.add_argument("--out-dir", type=Path)
    p.set_defaults(run=compress)

    p = commands.add_parser("decompress", help="bitstreams to PNG")
    p.add_argument("bitstreams", nargs="+", type=Path)
    p.add_argument("--out-dir", type=Path)
    p.set_defaults(run=decompress)

    p = commands.add_parser(
        "cut",
        help="the smallest rung of a bitstream's quality ladder meeting a lower quality",
    )
    p.add_argument("bitstream", type=Path)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--msssim", type=float)
    group.add_argument("--psnr", type=float)
    group.add_argument("--bytes", type=int, help="the longest prefix within this size")
    p.add_argument("--out", type=Path, help="default: <name>.<steps>.rgic beside it")
    p.set_defaults(run=cut)

    p = commands.add_parser("info", help="print a bitstream's header")
    p.add_argument("bitstream", type=Path)
    p.set_defaults(run=info)

    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValueError as error:  # pydantic's ValidationError: a setting the environment got wrong
        raise SystemExit(f"configuration error: {error}") from error
    # the long-running commands log what they do; one-shot commands only what goes wrong
    level = settings.log_level if args.command in ("serve", "worker") else "WARNING"
    configure_logging(settings.log_format, level)
    try:
        args.run(args)
    except ServiceError as error:
        raise SystemExit(f"error ({error.code}): {error.message}") from error
    except OSError as error:
        raise SystemExit(f"error: {error}") from error


if __name__ == "__main__":
    main()
