"""The receiver's restoration filter through a real embedded backend serving it beside the codec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from model_export.restoration import RestorationFilter, export
from service.backend.client import BackendClient
from service.backend.embedded import serve
from service.codec import refinement
from service.codec import restoration as restoration_module
from service.codec.bitstream import Bitstream
from service.codec.encoding import grey_image
from service.codec.pipeline import ImageCodec
from service.codec.rate_control import Target
from service.settings import PROJECT_ROOT

_CODEC = """config {{ name: "residual_gru" base_path: "{codec}" model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 8 }} }} }}"""
_FILTER = """config {{ name: "restoration" base_path: "{filter}" model_platform: "tensorflow"
    model_version_policy {{ all {{}} }} }}"""


def _backend(folder: Path, *configs: str) -> tuple:
    config = folder / "models.config"
    config.write_text("model_config_list {\n" + "\n".join(configs) + "\n}\n")
    server = serve(config, "127.0.0.1", 0, 64 * 1024 * 1024, mixed_precision="")
    return server, BackendClient(f"127.0.0.1:{server.bound_port}")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendClient]:
    """An embedded backend serving version 8 of the codec and a (random, not the identity) filter as
    ``restoration`` version 1."""
    folder = tmp_path_factory.mktemp("served")
    tf.random.set_seed(5)
    model = RestorationFilter()
    model.output_conv.kernel.assign(tf.random.normal(model.output_conv.kernel.shape, stddev=0.02))
    export(model, folder / "restoration" / "1")
    codec = _CODEC.format(codec=PROJECT_ROOT / "models" / "residual_gru")
    server, backend = _backend(folder, codec, _FILTER.format(filter=folder / "restoration"))
    yield backend
    backend.close()
    server.stop(grace=None)


@pytest.fixture(scope="module")
def client_without_filter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendClient]:
    """An embedded backend serving version 8 of the codec alone."""
    folder = tmp_path_factory.mktemp("codec_alone")
    server, backend = _backend(folder, _CODEC.format(codec=PROJECT_ROOT / "models" / "residual_gru"))
    yield backend
    backend.close()
    server.stop(grace=None)


def test_strips_restore_as_one_call_does(client: BackendClient, kodak_image, monkeypatch) -> None:
    restorer = restoration_module.Restorer(client)
    assert restorer.version() == 1
    image = np.ascontiguousarray(kodak_image[:150, :64])
    whole = restorer.restore(image, 20.0, 1)
    monkeypatch.setattr(restoration_module, "_MAX_PIXELS_PER_CALL", 64 * 40)  # strips of 40 rows
    np.testing.assert_array_equal(restorer.restore(image, 20.0, 1), whole)
    assert not np.array_equal(whole, image)


def test_a_perceptual_target_names_the_filter_and_the_receiver_applies_it(
    client: BackendClient, kodak_image
) -> None:
    codec = ImageCodec(client, "residual_gru", max_iterations=8)
    rgb = np.ascontiguousarray(kodak_image[:128, :192])
    result = codec.compress(rgb, Target("ssimulacra2", 40.0))
    assert result.target_met and result.coder == "layer"
    stream = Bitstream.from_bytes(result.bitstream)
    version, step = refinement.restoration_version(stream.refinement, stream.layer_format)
    assert version == 1 and step > 0
    decoded = codec.decompress(result.bitstream).image
    np.testing.assert_array_equal(decoded, result.reconstruction)
    unrestored = refinement.decode(grey_image(128, 192), stream.refinement, stream.layer_format)
    assert not np.array_equal(unrestored, decoded)


def test_a_receiver_without_the_filter_says_so(
    client: BackendClient, kodak_image, client_without_filter: BackendClient
) -> None:
    """A bitstream that names a filter version the backend does not serve is a clear 4xx, not a 500."""
    from service.errors import ModelVersionNotServed

    made = ImageCodec(client, "residual_gru", max_iterations=8).compress(
        np.ascontiguousarray(kodak_image[:128, :192]), Target("ssimulacra2", 40.0)
    )
    stream = Bitstream.from_bytes(made.bitstream)
    assert refinement.restoration_version(stream.refinement, stream.layer_format)[0] == 1
    with pytest.raises(ModelVersionNotServed):
        ImageCodec(client_without_filter, "residual_gru", max_iterations=8).decompress(made.bitstream)


def test_without_a_served_filter_the_layer_is_not_restored(client_without_filter, kodak_image) -> None:
    result = ImageCodec(client_without_filter, "residual_gru", max_iterations=8).compress(
        np.ascontiguousarray(kodak_image[:128, :192]), Target("ssimulacra2", 40.0)
    )
    stream = Bitstream.from_bytes(result.bitstream)
    assert result.coder == "layer"
    assert refinement.restoration_version(stream.refinement, stream.layer_format)[0] == 0


def test_the_shipped_filter_is_served_and_named_by_perceptual_bitstreams(backend_client, kodak_image) -> None:
    """``make run``'s backend serves models/restoration: a SSIMULACRA 2 target's layer names its version."""
    codec = ImageCodec(backend_client, "residual_gru", max_iterations=8)
    assert codec.restorer.version() == 1
    result = codec.compress(np.ascontiguousarray(kodak_image[:128, :192]), Target("ssimulacra2", 40.0))
    stream = Bitstream.from_bytes(result.bitstream)
    assert refinement.restoration_version(stream.refinement, stream.layer_format)[0] == 1
    np.testing.assert_array_equal(codec.decompress(result.bitstream).image, result.reconstruction)
