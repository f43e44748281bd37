"""Export the codec as a TensorFlow SavedModel that stock TensorFlow Serving loads.

    python -m model_export.export --run-dir runs/residual_gru --models-dir models --version 2

Signatures (every input carries the batch dimension, as TF Serving's batching requires):

- ``compress``:    image uint8 [B,H,W,3], iterations int32 [B,h,w], stop_msssim float32 [B],
                   stop_psnr float32 [B], extra_iterations int32 [B]
                   → bits int8 [B,N,h,w,C], reconstructions uint8 [B,N,H,W,3],
                     msssim_sums float32 [B,N,h,w,3,5], msssim_positions float32 [B,h,w,5],
                     squared_errors float32 [B,N,h,w]
- ``decompress``:  bits int8 [B,N,h,w,C] → reconstructions uint8 [B,N,H,W,3], reconstruction uint8
                   [B,H,W,3] (the last; from version 4)
- ``encode_step``: residual float32 [B,H,W,3], iteration int32 [B], reconstruction float32 [B,H,W,3]
                   (the previous one, for the adaptive gain; from version 5), enc_state_{1..3}
                   → bits int8 [B,h,w,C], enc_state_{1..3}
- ``decode_step``: bits int8 [B,h,w,C], iteration int32 [B], reconstruction float32 [B,H,W,3],
                   dec_state_{1..4} → reconstruction, image uint8 [B,H,W,3], dec_state_{1..4}
- ``context_model``: batch int32 [B] (any values) → weights int32 [B,T,C,F], biases int32 [B,T,C],
                   table int32 [B,S]: the entropy coder's integer context model fitted to this
                   model's codes (``model_export/context_fit.py``), the same for every batch row

H and W are multiples of 16 (h = H/16, w = W/16). ``assets/codec.json`` records the configuration.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from model_export.context_fit import fit_context_model, training_codes
from model_export.model import CodecConfig, RecurrentCodec, to_uint8
from model_export.shipped import (
    CODEC_METADATA,
    GATES,
    GRU_KERNEL_STORAGE,
    GRU_KERNELS,
    restore_codec_weights,
    shipped_config,
    shipped_context_model,
    shipped_metadata,
    shipped_trained_iterations,
    stored_codec,
)
from model_export.snapshot import restore_snapshot, snapshot_config, snapshot_metadata
from model_export.warmup import write_warmup_requests
from service.codec.context_model import ContextModel

__all__ = ["MODEL_NAME", "ExportedCodec", "export_saved_model"]

MODEL_NAME = "residual_gru"


class ExportedCodec(tf.Module):
    """The SavedModel root: the codec's variables and the context model's arrays.

    The serving functions are saved as signatures only (:meth:`signatures`): held as attributes as well,
    every traced function was written twice into ``saved_model.pb`` (1.24 MB against 0.69 MB for version 5).
    """

    def __init__(self, codec: RecurrentCodec, context_model: ContextModel | None = None) -> None:
        super().__init__(name="exported_codec")
        self.codec = codec
        self.context_arrays: dict[str, tf.Tensor] = {}
        if context_model is not None:
            arrays = {
                "weights": context_model.weights,
                "biases": context_model.biases,
                "table": context_model.table,
            }
            self.context_arrays = {k: tf.constant(_narrowest(v)) for k, v in arrays.items()}

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """One concrete function per serving signature, by name."""
        codec = self.codec
        config = codec.config
        bits = config.bits_per_cell
        enc_specs = [
            tf.TensorSpec([None, None, None, c], tf.float32, name=f"enc_state_{i + 1}")
            for i, (_, c) in enumerate(config.encoder_state_shapes)
        ]
        dec_specs = [
            tf.TensorSpec([None, None, None, c], tf.float32, name=f"dec_state_{i + 1}")
            for i, (_, c) in enumerate(config.decoder_state_shapes)
        ]

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, None, 3], tf.uint8, name="image"),
                tf.TensorSpec([None, None, None], tf.int32, name="iterations"),
                tf.TensorSpec([None], tf.float32, name="stop_msssim"),
                tf.TensorSpec([None], tf.float32, name="stop_psnr"),
                tf.TensorSpec([None], tf.int32, name="extra_iterations"),
            ]
        )
        def compress(image, iterations, stop_msssim, stop_psnr, extra_iterations) -> dict[str, tf.Tensor]:
            return codec.compress(image, iterations, stop_msssim, stop_psnr, extra_iterations)

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None, bits], tf.int8, name="bits")])
        def decompress(bits_in: tf.Tensor) -> dict[str, tf.Tensor]:
            return codec.decompress(bits_in)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, None, 3], tf.float32, name="residual"),
                tf.TensorSpec([None], tf.int32, name="iteration"),
                tf.TensorSpec([None, None, None, 3], tf.float32, name="reconstruction"),
                *enc_specs,
            ]
        )
        def encode_step(residual, iteration, reconstruction, enc_state_1, enc_state_2, enc_state_3):
            gain = codec.gain(iteration, reconstruction)
            states_in = [enc_state_1, enc_state_2, enc_state_3]
            codes, states = codec.encode_codes(residual, iteration, states_in, gain)
            out = {"bits": tf.cast(codec.binarize(codes, training=False), tf.int8)}
            out.update({f"enc_state_{i + 1}": s for i, s in enumerate(states)})
            return out

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, None, bits], tf.int8, name="bits"),
                tf.TensorSpec([None], tf.int32, name="iteration"),
                tf.TensorSpec([None, None, None, 3], tf.float32, name="reconstruction"),
                *dec_specs,
            ]
        )
        def decode_step(
            bits_in, iteration, reconstruction, dec_state_1, dec_state_2, dec_state_3, dec_state_4
        ):
            reconstruction, states = codec.decode(
                tf.cast(bits_in, tf.float32),
                iteration,
                [dec_state_1, dec_state_2, dec_state_3, dec_state_4],
                reconstruction,
            )
            out = {"reconstruction": reconstruction, "image": to_uint8(reconstruction)}
            out.update({f"dec_state_{i + 1}": s for i, s in enumerate(states)})
            return out

        functions = {
            "compress": compress,
            "decompress": decompress,
            "encode_step": encode_step,
            "decode_step": decode_step,
        }
        if self.context_arrays:
            context_arrays = self.context_arrays

            @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name="batch")])
            def context_model_fn(batch: tf.Tensor) -> dict[str, tf.Tensor]:
                rows = tf.shape(batch)[0]
                return {
                    name: tf.tile(
                        tf.cast(value, tf.int32)[None], tf.concat([[rows], tf.ones_like(tf.shape(value))], 0)
                    )
                    for name, value in context_arrays.items()
                }

            functions["context_model"] = context_model_fn
        return {name: function.get_concrete_function() for name, function in functions.items()}


def _narrowest(values: np.ndarray) -> np.ndarray:
    """``values`` (integers) in the smallest of int16, uint16 and int32 that holds them: the context
    model's arrays are constants in ``saved_model.pb``, and the signature returns them as int32."""
    for dtype in (np.int16, np.uint16, np.int32):
        info = np.iinfo(dtype)
        if values.min() >= info.min and values.max() <= info.max:
            return values.astype(dtype)
    raise ValueError("context model values beyond int32")


def export_saved_model(
    codec: RecurrentCodec,
    version_dir: Path,
    metadata: dict[str, object] | None = None,
    context_model: ContextModel | None = None,
    gru_kernels: str = "int8",
    fused_gates: bool = False,
) -> Path:
    """Write ``codec`` (and the entropy coder's ``context_model`` for its codes, if given) as a
    SavedModel to ``version_dir`` atomically (temp dir, then rename).

    Weights are stored in float16, the GRU cells' kernels by default in int8 with a scale per output
    channel (``gru_kernels``, one of ``GRU_KERNEL_STORAGE``; half the size again, docs/decisions.md 36);
    compute stays float32. ``fused_gates`` writes each GRU convolution whole, as versions up to 7 were.
    """
    version_dir = Path(version_dir)
    if version_dir.exists():
        raise FileExistsError(f"{version_dir} exists: model versions are immutable, pick a new one")
    version_dir.parent.mkdir(parents=True, exist_ok=True)
    shipped = stored_codec(codec.config, gru_kernels, fused_gates)
    shipped.copy_weights_from(codec)
    root = ExportedCodec(shipped, context_model)
    with tempfile.TemporaryDirectory(dir=version_dir.parent) as tmp:
        staging = Path(tmp) / "model"
        tf.saved_model.save(root, str(staging), signatures=root.signatures())
        info = {
            "model_name": MODEL_NAME,
            "config": json.loads(codec.config.to_json()),
            GRU_KERNELS: gru_kernels,
            GATES: "fused" if fused_gates else "parts",
            **(metadata or {}),
        }
        (staging / "assets").mkdir(exist_ok=True)
        (staging / "assets" / CODEC_METADATA).write_text(json.dumps(info, indent=2, sort_keys=True))
        write_warmup_requests(staging, MODEL_NAME, codec.config)
        shutil.move(str(staging), str(version_dir))
    return version_dir


def main(argv: list[str] | None = None) -> None:
    from model_export.train import DEFAULT_TRAIN_DIR

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", default="runs/residual_gru")
    parser.add_argument(
        "--init-from",
        default="",
        help="a SavedModel dir to re-export with this code's signatures (keeping its context model if any)",
    )
    parser.add_argument("--snapshot-dir", default="", help="export the repository's training snapshot")
    parser.add_argument(
        "--training-iterations", type=int, default=None, help="iterations the run unrolled (recorded)"
    )
    parser.add_argument(
        "--refit-context", action="store_true", help="fit a new context model even if --init-from has one"
    )
    parser.add_argument(
        "--context-from",
        type=Path,
        default=None,
        help="a version dir whose context model to ship instead of fitting one (a quick measurement of "
        "a snapshot: its codes' statistics differ a little from that version's, so bitstreams are a "
        "little larger than with its own fit; a version to ship gets its own)",
    )
    parser.add_argument(
        "--gru-kernels",
        choices=sorted(GRU_KERNEL_STORAGE),
        default="int8",
        help="how the GRU cells' kernels are stored (int8: a scale per output channel; int8-encoder: "
        "the encoder's only)",
    )
    parser.add_argument(
        "--fused-gates",
        action="store_true",
        help="each GRU convolution whole, its output split, as versions up to 7 (re-exports of them)",
    )
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--version", type=int, required=True)
    parser.add_argument("--data", type=Path, default=DEFAULT_TRAIN_DIR.resolve())
    parser.add_argument(
        "--context-images", type=int, default=200, help="training images the context model sees"
    )
    parser.add_argument(
        "--context-iterations", type=int, default=12, help="iterations with their own weights"
    )
    args = parser.parse_args(argv)

    context_model, context_images, refit = None, args.context_images, True
    if args.init_from:
        source = Path(args.init_from)
        codec = RecurrentCodec(shipped_config(source))
        restore_codec_weights(codec, source, warm_start=False)
        metadata = shipped_metadata(source)
        steps, origin = int(metadata.get("training_steps", 0)), str(source)
        training_iterations = shipped_trained_iterations(source)
        # The same weights make the same codes: its fit still holds. A version that shipped none (up to
        # 2) coded its bits without one, and its re-export must decode them the same.
        refit = args.refit_context
        if not refit:
            context_model = shipped_context_model(source)
            context_images = metadata.get("context_model_images")
    elif args.snapshot_dir:
        source = Path(args.snapshot_dir)
        codec = RecurrentCodec(snapshot_config(source))
        steps, origin = restore_snapshot(codec, source), str(source)
        training_iterations = snapshot_metadata(source).get("training_iterations")
    else:
        run_dir = Path(args.run_dir)
        codec = RecurrentCodec(CodecConfig.from_json((run_dir / "config.json").read_text()))
        step_counter = tf.Variable(0, dtype=tf.int64)
        checkpoint = tf.train.Checkpoint(codec=codec, step=step_counter)
        origin = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
        if origin is None:
            raise SystemExit(f"no checkpoint under {run_dir / 'checkpoints'}")
        checkpoint.restore(origin).expect_partial()
        steps = int(step_counter)
        training_iterations = args.training_iterations
    if args.context_from is not None:
        context_model = shipped_context_model(args.context_from)
        context_images = shipped_metadata(args.context_from).get("context_model_images")
    elif refit:
        codes = training_codes(codec, args.data, args.context_images, args.context_iterations)
        context_model = fit_context_model(codes, args.context_iterations)
    out = export_saved_model(
        codec,
        Path(args.models_dir) / MODEL_NAME / str(args.version),
        {
            key: value
            for key, value in {
                "training_steps": steps,
                "training_iterations": training_iterations,
                "context_model_images": context_images,
            }.items()
            if value is not None
        },
        context_model,
        args.gru_kernels,
        args.fused_gates,
    )
    print(f"exported {origin} (step {steps}) to {out}")


if __name__ == "__main__":
    main()
