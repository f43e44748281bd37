import csv
import signal

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from model_export import train as training
from model_export.model import RecurrentCodec
from model_export.snapshot import restore_snapshot, snapshot_metadata
from model_export.train import learning_rate, unrolled_iterations
from tests.model_export.test_model import TINY


def test_learning_rate_is_constant_then_halves_from_the_decay_start() -> None:
    assert learning_rate(10_000, 5e-4, 0.0) == 5e-4  # no half-life: constant
    assert learning_rate(900, 4e-4, 3000, decay_start=1000) == 4e-4
    assert learning_rate(4000, 4e-4, 3000, decay_start=1000) == pytest.approx(2e-4)
    assert learning_rate(7000, 4e-4, 3000, decay_start=1000) == pytest.approx(1e-4)


def test_every_long_every_th_step_unrolls_the_long_iterations() -> None:
    assert [unrolled_iterations(step, 8, 16, 4) for step in range(8)] == [8, 8, 8, 16, 8, 8, 8, 16]
    assert {unrolled_iterations(step, 8, 0, 4) for step in range(8)} == {8}


def test_training_checkpoints_logs_and_resumes_with_fresh_crops(tmp_path, monkeypatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(data / f"{i}.png")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(TINY.to_json())
    seeds: list[int] = []
    real_sampler = training.CropSampler

    def recording_sampler(*args, seed: int, **kwargs):
        seeds.append(seed)
        return real_sampler(*args, seed=seed, **kwargs)

    monkeypatch.setattr(training, "CropSampler", recording_sampler)
    handler = signal.getsignal(signal.SIGTERM)
    common = ["--run-dir", str(run), "--data", str(data), "--batch", "2", "--iterations", "2"]
    training.main([*common, "--steps", "2"])
    training.main([*common, "--steps", "4"])

    checkpoints = sorted(p.name for p in (run / "checkpoints").glob("ckpt-*.index"))
    assert checkpoints == ["ckpt-2.index", "ckpt-4.index"]
    rows = [r for r in csv.reader((run / "log.csv").open()) if r and r[0].isdigit()]
    assert [int(r[0]) for r in rows] == [0]  # logged every 50 steps, from step 0
    assert len(seeds) == 2 and seeds[0] != seeds[1]  # the resumed run draws new crops
    assert signal.getsignal(signal.SIGTERM) is handler  # its stop handler is gone after training


def test_a_new_machine_resumes_from_the_repository_snapshot(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(data / f"{i}.png")
    first_run, snapshot = tmp_path / "run1", tmp_path / "snapshot"
    first_run.mkdir()
    (first_run / "config.json").write_text(TINY.to_json())
    common = ["--data", str(data), "--batch", "2", "--iterations", "2", "--snapshot-dir", str(snapshot)]
    long_steps = ["--long-iterations", "3", "--long-every", "2"]  # step 1 unrolls 3 iterations
    training.main([*common, "--run-dir", str(first_run), "--steps", "3", *long_steps])
    assert snapshot_metadata(snapshot)["step"] == 3
    assert snapshot_metadata(snapshot)["training_iterations"] == 3
    trained = RecurrentCodec(TINY)
    assert restore_snapshot(trained, snapshot) == 3

    # the machine is new: runs/ is gone, the snapshot (committed) is all there is; it takes up priming
    training.main([*common, "--run-dir", str(tmp_path / "run2"), "--steps", "5", "--priming", "1"])
    assert snapshot_metadata(snapshot)["step"] == 5
    assert snapshot_metadata(snapshot)["config"]["priming"] == 1
    resumed = RecurrentCodec(TINY)
    restore_snapshot(resumed, snapshot)
    moved = [
        not np.array_equal(a.numpy(), b.numpy())
        for a, b in zip(trained.trainable_variables, resumed.trainable_variables, strict=True)
    ]
    assert any(moved)  # two more steps trained on top of the snapshot's weights
    with np.load(snapshot / "weights.npz") as arrays:
        assert arrays["enc_conv/kernel"].dtype == np.float16


def test_bfloat16_training_leaves_the_process_float32_afterwards() -> None:
    rewrite = "auto_mixed_precision_onednn_bfloat16"
    with training._mixed_precision("bfloat16") as on:
        assert on and tf.config.optimizer.get_experimental_options()[rewrite]
    assert not tf.config.optimizer.get_experimental_options().get(rewrite, False)
    with training._mixed_precision("") as on:
        assert not on and not tf.config.optimizer.get_experimental_options().get(rewrite, False)
