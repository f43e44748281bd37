"""Fixtures of the model_export tests: a tiny codec exported as a SavedModel."""

from pathlib import Path

import pytest
import tensorflow as tf

from model_export.export import export_saved_model
from model_export.model import RecurrentCodec
from tests.model_export.test_model import TINY
from tests.service.codec.test_entropy import random_context_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[RecurrentCodec, Path]:
    """A randomly initialised TINY codec exported with a random context model: (codec, version dir)."""
    tf.random.set_seed(1)
    codec = RecurrentCodec(TINY)
    context_model = random_context_model(TINY.bits_per_cell, iterations=2)
    path = export_saved_model(
        codec, tmp_path_factory.mktemp("models") / "tiny" / "1", {"training_steps": 7}, context_model
    )
    return codec, path
