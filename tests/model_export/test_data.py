from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model_export.data import CropSampler, image_paths, is_validation, load_training_images


def test_crop_sampler_batches_are_in_range_and_shaped() -> None:
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (40, 50, 3), dtype=np.uint8),
        rng.integers(0, 256, (64, 33, 3), dtype=np.uint8),
    ]
    batch = CropSampler(images, crop=32, batch=8, seed=1).next_batch()
    assert batch.shape == (8, 32, 32, 3) and batch.dtype == np.float32
    assert batch.min() >= -0.5 and batch.max() <= 0.5


def test_hard_crops_are_busier_than_random_ones() -> None:
    flat = np.full((200, 200, 3), 128, np.uint8)
    flat[:, 150:] = np.random.default_rng(0).integers(0, 256, (200, 50, 3))  # a busy strip
    sampler = CropSampler([flat], crop=32, batch=64, hard_fraction=1.0, candidates=8, seed=2)
    hard = sampler.next_batch()
    easy = CropSampler([flat], crop=32, batch=64, hard_fraction=0.0, seed=2).next_batch()
    assert np.abs(np.diff(hard, axis=1)).mean() > np.abs(np.diff(easy, axis=1)).mean()


def test_loader_refuses_kodak(tmp_path: Path) -> None:
    (tmp_path / "kodak").mkdir()
    Image.new("RGB", (80, 80)).save(tmp_path / "kodak" / "kodim01.png")
    with pytest.raises(ValueError, match="Kodak"):
        load_training_images(tmp_path, progress=False)


def test_loader_halves_jpeg_sources(tmp_path: Path) -> None:
    Image.new("RGB", (400, 200)).save(tmp_path / "a.jpg")
    Image.new("RGB", (200, 100)).save(tmp_path / "b.png")
    shapes = [im.shape for im in load_training_images(tmp_path, progress=False, split="all")]
    assert shapes == [(100, 200, 3), (100, 200, 3)]


def test_validation_split_is_held_out_of_training_and_stable(tmp_path: Path) -> None:
    for source in ("busy", "smooth"):
        (tmp_path / source).mkdir()
        for i in range(40):
            Image.new("RGB", (8, 8)).save(tmp_path / source / f"{i}.png")
    train = set(image_paths(tmp_path, "train"))
    validation = set(image_paths(tmp_path, "validation"))
    assert train.isdisjoint(validation)
    assert train | validation == set(image_paths(tmp_path, "all"))
    assert 0 < len(validation) < len(train)
    assert {p.parent.name for p in validation} == {"busy", "smooth"}  # every source contributes
    # the split depends on folder and name only, not on what else is there
    (tmp_path / "busy" / "0.png").unlink()
    assert set(image_paths(tmp_path, "validation")) == validation - {tmp_path / "busy" / "0.png"}
    assert all(is_validation(p) for p in validation)
