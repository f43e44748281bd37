"""Fit the refinement layer's starting counts on the training split: ``service/codec/coefficient_counts.py``.

    python -m model_export.fit_layer_counts --out /tmp/coefficient_counts.py

The layer's coefficient coder (service/codec/coefficient_coder.py) adapts its symbol counts per context
as it codes. From ½ each (18 symbols), a context's first 32 symbols cost over 4 bits each where a zero is
nearly certain, and the first bands split into many contexts by the blocks' means: on a 481×321 photo at
its coarsest step, 864 of the layer's 2,636 bytes coded four nonzero coefficients. Fitted here instead:
for ``--images`` photos of the training split (never the validation split, never Kodak; each at most
1024×1024), the layer alone at MS-SSIM 0.90, 0.95 and 0.98, the symbols each of the coder's three models
(the adaptive quantiser's levels, the block means, the rest) codes per context, scaled to ``--total``
counts per context, in halves, none below ½.

The tables are part of the bitstream format (bit 2 of the layer payload's mode byte, docs/decisions.md 51):
a payload coded with them decodes only with them. New numbers need a new mode bit, not an edit.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from model_export.data import image_paths
from service.codec import coefficient_coder
from service.codec.layer_coder import layer_alone
from service.codec.quality import msssim

TARGETS = (0.90, 0.95, 0.98)
#: the largest side a photo is fitted at (a crop): the layer's statistics are local
SIDE = 1024


def tallies(paths: list[Path]) -> dict[str, np.ndarray]:
    """Symbols coded per model and context [contexts, symbols] over ``paths``' layers at ``TARGETS``."""
    counted: dict[str, np.ndarray] = {}
    for path in tqdm(paths, desc="photos", unit="photo"):
        rgb = np.ascontiguousarray(np.asarray(Image.open(path).convert("RGB"))[:SIDE, :SIDE])
        for target in TARGETS:
            trial, _ = layer_alone(rgb, "msssim", target, msssim)
            coefficient_coder.encode(trial.quantised, trial.levels, tallies=counted)
    return counted


def starting_counts(tally: np.ndarray, total: float) -> np.ndarray:
    """Each context's symbol shares scaled to ``total`` counts, in halves, none below ½ (exact binary
    fractions, as the coder's counts must be)."""
    shares = tally / np.maximum(tally.sum(axis=1, keepdims=True), 1)
    return np.maximum(np.round(shares * total * 2) / 2, 0.5)


def module_text(counts: dict[str, np.ndarray], images: int, total: float) -> str:
    """``service/codec/coefficient_counts.py`` holding ``counts`` as halves (integers)."""
    lines = [
        '"""The refinement layer\'s starting counts per model, context and symbol (written by',
        f"``python -m model_export.fit_layer_counts``: {images} training photos, {total:g} counts per",
        "context). Part of the bitstream format (bit 2 of the layer payload's mode byte, docs/decisions.md",
        "51): a payload coded with them decodes only with them. New numbers need a new mode bit, not an",
        'edit."""',
        "",
        "import numpy as np",
        "",
    ]
    for name in ("levels", "means", "rest"):
        halves = (counts[name] * 2).astype(np.int64)
        rows = ",\n".join("    (" + ", ".join(str(v) for v in row) + ")" for row in halves)
        lines += [f"{name.upper()} = np.array([\n{rows},\n]) / 2", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from model_export.train import DEFAULT_TRAIN_DIR

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_TRAIN_DIR.resolve())
    parser.add_argument("--images", type=int, default=90)
    parser.add_argument("--total", type=float, default=256.0)
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    paths = image_paths(args.data, "train")
    chosen = sorted(np.random.default_rng(args.seed).choice(len(paths), args.images, replace=False))
    counted = tallies([paths[i] for i in chosen])
    counts = {name: starting_counts(tally, args.total) for name, tally in counted.items()}
    args.out.write_text(module_text(counts, args.images, args.total))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
