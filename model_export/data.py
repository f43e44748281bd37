"""Training data: random crops of the photographs in ../shared/data/train, favouring hard patches."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

__all__ = [
    "IMAGE_SUFFIXES",
    "VALIDATION_ONE_IN",
    "CropSampler",
    "image_paths",
    "is_validation",
    "load_image",
    "load_training_images",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")
#: JPEG sources are halved with a box filter, which removes most of their compression noise.
JPEG_DOWNSCALE = 2
#: One photograph in this many is held out of training as the validation split (from session 6 on).
VALIDATION_ONE_IN = 16


def is_validation(path: Path) -> bool:
    """Whether a photograph of the training folder is held out for validation: one in
    ``VALIDATION_ONE_IN`` of each source folder, chosen by a hash of its folder and name so that the
    split never changes with the files beside it (busy and smooth photos alike)."""
    key = f"{path.parent.name}/{path.name}".encode()
    return zlib.crc32(key) % VALIDATION_ONE_IN == 0


def image_paths(root: Path, split: str = "train") -> list[Path]:
    """The images under ``root`` of one ``split``: "train" (what training sees), "validation" or "all"."""
    paths = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if any("kodak" in part.lower() for p in paths for part in p.parts):
        raise ValueError("refusing to train on Kodak: it is the evaluation set")
    if split == "all":
        return paths
    if split not in ("train", "validation"):
        raise ValueError(f"unknown split {split!r}")
    return [p for p in paths if is_validation(p) == (split == "validation")]


def load_image(path: Path) -> np.ndarray:
    """One photograph of the training folder as uint8 RGB [H,W,3]; JPEGs halved (``JPEG_DOWNSCALE``)."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        if path.suffix.lower() in (".jpg", ".jpeg"):
            rgb = rgb.reduce(JPEG_DOWNSCALE)
        return np.asarray(rgb, dtype=np.uint8)


def load_training_images(
    root: Path, min_side: int = 64, progress: bool = True, split: str = "train"
) -> list[np.ndarray]:
    """Load the images of ``split`` under ``root`` as uint8 RGB arrays; Kodak must never be under ``root``."""
    images = []
    for path in tqdm(image_paths(root, split), desc="loading training images", disable=not progress):
        array = load_image(path)
        if min(array.shape[:2]) >= min_side:
            images.append(array)
    if not images:
        raise ValueError(f"no training images found under {root}")
    return images


class CropSampler:
    """Yields batches of random ``crop``×``crop`` crops, flipped at random, in [-0.5, 0.5].

    Toderici et al. found training on high-entropy patches helps: for a fraction ``hard_fraction``
    of each batch, the busiest of ``candidates`` random crops (by mean absolute gradient) is kept.
    """

    def __init__(
        self,
        images: list[np.ndarray],
        crop: int = 32,
        batch: int = 32,
        hard_fraction: float = 0.5,
        candidates: int = 4,
        seed: int = 0,
    ) -> None:
        self.images = images
        self.crop, self.batch = crop, batch
        self.hard_count = round(hard_fraction * batch)
        self.candidates = candidates
        self.rng = np.random.default_rng(seed)
        areas = np.array([im.shape[0] * im.shape[1] for im in images], dtype=np.float64)
        self.weights = areas / areas.sum()

    def _random_crop(self) -> np.ndarray:
        image = self.images[self.rng.choice(len(self.images), p=self.weights)]
        y = self.rng.integers(0, image.shape[0] - self.crop + 1)
        x = self.rng.integers(0, image.shape[1] - self.crop + 1)
        patch = image[y : y + self.crop, x : x + self.crop]
        return patch[:, ::-1] if self.rng.random() < 0.5 else patch

    @staticmethod
    def _busyness(patch: np.ndarray) -> float:
        p = patch.astype(np.int16)
        return float(np.abs(np.diff(p, axis=0)).mean() + np.abs(np.diff(p, axis=1)).mean())

    def next_batch(self) -> np.ndarray:
        """One batch, float32 [batch, crop, crop, 3]."""
        crops = []
        for i in range(self.batch):
            if i < self.hard_count:
                options = [self._random_crop() for _ in range(self.candidates)]
                crops.append(max(options, key=self._busyness))
            else:
                crops.append(self._random_crop())
        return np.stack(crops).astype(np.float32) / 255.0 - 0.5

    def __iter__(self) -> Iterator[np.ndarray]:
        while True:
            yield self.next_batch()
