"""The codec pipeline against the embedded backend, without HTTP."""

from pathlib import Path

import numpy as np
import pytest

from service.codec.bitstream import NETWORK_ONLY_FORMAT, Bitstream
from service.codec.encoding import EarlyExit, Encoding
from service.codec.entropy import CODER_RAW, encode_payload
from service.codec.goals import next_aim
from service.codec.patches import Geometry
from service.codec.pipeline import ImageCodec
from service.codec.postfilters import WRITTEN, network_shown
from service.codec.rate_control import Target
from service.errors import BadParameter, InvalidBitstream
from tests.conftest import KODAK


@pytest.fixture(scope="module")
def codec(backend_client) -> ImageCodec:
    return ImageCodec(backend_client, "residual_gru", patch_size=32, tile_size=64, max_iterations=8)


def test_tiles_with_different_counts_decode_to_what_compress_measured(codec: ImageCodec, kodak_image) -> None:
    rgb = np.ascontiguousarray(kodak_image[:64, :128])  # two 64-px tiles
    counts = np.array([[1, 2, 3, 3], [2, 1, 3, 2]])  # left tile stops after 2 iterations, right after 3
    encoding = codec.encode(rgb, counts)
    data = codec.bitstream(encoding, counts)
    expected = encoding.reconstruction(3)
    np.testing.assert_array_equal(codec.decompress(data).image, expected)
    _, frames = codec.decompress_progressive(data)
    np.testing.assert_array_equal(list(frames)[-1], expected)


@pytest.mark.parametrize(
    ("kind", "value"), [("msssim", 0.85), ("psnr", 25.0), ("ssimulacra2", 30.0), ("ssimulacra2", 80.0)]
)
def test_compress_meets_a_reachable_target_and_reports_the_decoded_quality(
    codec: ImageCodec, kodak_image, kind: str, value: float
) -> None:
    from service.codec.quality import msssim, psnr, ssimulacra2

    rgb = np.ascontiguousarray(kodak_image[:128, :192])
    result = codec.compress(rgb, Target(kind, value))
    assert result.target_met and getattr(result, kind) >= value
    decoded = codec.decompress(result.bitstream).image
    np.testing.assert_array_equal(decoded, result.reconstruction)
    assert msssim(rgb, decoded) == pytest.approx(result.msssim, abs=1e-6)
    assert psnr(rgb, decoded) == pytest.approx(result.psnr, abs=1e-6)
    assert ssimulacra2(rgb, decoded) == pytest.approx(result.ssimulacra2, abs=1e-6)


def test_decode_limits(codec: ImageCodec, kodak_image) -> None:
    rgb = np.ascontiguousarray(kodak_image[:32, :32])
    data = codec.compress(rgb, Target("bpp", 8)).bitstream
    small = ImageCodec(codec.client, "residual_gru", max_pixels=100)
    with pytest.raises(InvalidBitstream, match="pixels"):
        small.decompress(data)
    few = ImageCodec(codec.client, "residual_gru", max_iterations=1)
    with pytest.raises(InvalidBitstream, match="iterations"):
        few.decompress(data)


def test_adaptive_allocation_is_never_larger_than_the_smallest_uniform_count(
    backend_client, kodak_image
) -> None:
    from service.codec.quality import msssim

    # without the smooth-patch rules, which spend bytes on what a viewer sees (tested in test_goals.py)
    codec = ImageCodec(
        backend_client,
        "residual_gru",
        max_iterations=8,
        smooth_patch_iterations=1,
        smooth_patch_delta_e=0,
        refinement_base_iterations=None,  # the network alone
    )
    rgb = np.ascontiguousarray(kodak_image[:256, :384])
    result = codec.compress(rgb, Target("msssim", 0.95))
    encoding = codec.encode(rgb, 8)
    meeting = [n for n in range(1, 9) if msssim(rgb, encoding.reconstruction(n)) >= 0.95]
    assert result.target_met and meeting
    uniform_bytes = len(codec.bitstream(encoding, np.full(encoding.geometry.patches, meeting[0])))
    assert len(result.bitstream) <= uniform_bytes
    assert msssim(rgb, codec.decompress(result.bitstream).image) == pytest.approx(result.msssim, abs=1e-6)


def test_a_mixed_allocation_is_found_where_the_estimate_is_far_off(backend_client) -> None:
    """kodim20: flat sky at one iteration beside busy cells at three measures 0.932 where the cell sums
    estimate 0.950; the aim must move between that and the uniform count, not past the uniform count."""
    from PIL import Image

    rgb = np.asarray(Image.open(KODAK / "kodim20.png").convert("RGB"))
    codec = ImageCodec(backend_client, "residual_gru", refinement_base_iterations=None)  # the network alone
    result = codec.compress(rgb, Target("msssim", 0.95))
    assert result.target_met and result.patch_iterations.min() < result.patch_iterations.max()
    encoding = codec.encode(rgb, int(result.patch_iterations.max()))
    uniform = codec.bitstream(encoding, np.full(encoding.geometry.patches, result.patch_iterations.max()))
    assert len(result.bitstream) < 0.9 * len(uniform)


def test_next_aim_interpolates_instead_of_shifting_by_the_shortfall() -> None:
    short, meets = (0.9507, 0.9321), (0.9629, 0.9629)  # kodim20's first composite, and uniform 3
    aim = next_aim([short], meets, 0.95, 1e-4)
    assert 0.9507 < aim < 0.9629 < 0.9507 + (0.95 - 0.9321)
    assert aim == pytest.approx(0.9507 + (0.95 - 0.9321) / (0.9629 - 0.9321) * (0.9629 - 0.9507) + 1e-4)
    assert next_aim([(0.9510, 0.94999)], (0.9600, 0.9600), 0.95, 1e-4) > 0.9510 + 1e-4  # always moves


def test_after_two_misses_next_aim_follows_them_past_the_uniform_count() -> None:
    """The 24 Mpx photo's first two composites: each 0.0016 below its estimate, and the uniform count
    (floored for smooth patches) just meeting the target at an estimate below where they would."""
    misses = [(0.95032, 0.94869), (0.95102, 0.94942)]
    meets = (0.95120, 0.95060)
    one = next_aim(misses[:1], meets, 0.95, 1e-4)
    assert misses[0][0] < one < meets[0] + 1e-4
    two = next_aim(misses, meets, 0.95, 1e-4)
    slope = (0.94942 - 0.94869) / (0.95102 - 0.95032)
    assert two == pytest.approx(0.95102 + (0.95 - 0.94942) / slope + 1e-4)
    assert two > meets[0] + 1e-4
    # a pair that does not rise together says nothing about the line: interpolate from the last
    flat = [(0.95032, 0.94869), (0.95102, 0.94860)]
    assert next_aim(flat, meets, 0.95, 1e-4) == pytest.approx(next_aim(flat[1:], meets, 0.95, 1e-4))


def test_every_served_version_has_the_outputs_the_gateway_asks_for(backend_client) -> None:
    """Rate control reads ``compress``'s quality outputs and decodes ask ``decompress`` for the final
    image alone: every shipped version has both (version 2 since its re-export, decision 49)."""
    versions = backend_client.available_versions("residual_gru")
    assert 2 in versions and len(versions) >= 2
    for version in versions:
        signatures = backend_client.signature_defs("residual_gru", version)
        assert {"msssim_sums", "msssim_positions", "squared_errors"} <= set(signatures["compress"].outputs)
        assert {"reconstruction", "reconstructions"} <= set(signatures["decompress"].outputs)


def test_a_format_3_bitstream_of_version_2_decodes_to_the_backends_image(backend_client, kodak_image) -> None:
    """Format 3 shows the network's image as the backend gives it (8 and 9 deblock it)."""
    rgb = np.ascontiguousarray(kodak_image[:64, :96])
    encoding = ImageCodec(backend_client, "residual_gru").encode(rgb, 3)
    geometry = encoding.geometry
    counts = np.full(geometry.patches, 3, np.uint8)
    cells = geometry.cell_iterations(counts)
    payload = encode_payload(CODER_RAW, encoding.bits[:3], cells)
    size = (96, 64, geometry.patch_size, geometry.tile_size)
    stream = Bitstream(
        "residual_gru", 2, *size, bits_per_cell=32, patch_iterations=counts, payload=payload, format_version=3
    )  # format 3: the network's image as the backend gives it (8 and 9 deblock it)
    decoded = ImageCodec(backend_client, "residual_gru").decompress(stream.to_bytes())
    direct = backend_client.predict("residual_gru", 2, "decompress", {"bits": encoding.bits[None, :3]})
    np.testing.assert_array_equal(decoded.image, geometry.crop(direct["reconstruction"][0]))
    np.testing.assert_array_equal(direct["reconstruction"][0], direct["reconstructions"][0, -1])


def test_composite_takes_each_cell_from_its_own_iteration() -> None:
    geometry = Geometry(40, 20, patch_size=16)  # padded to 48 × 32: cells 2 × 3, cropped back
    rng = np.random.default_rng(0)
    reconstructions = rng.integers(0, 256, (3, 32, 48, 3), dtype=np.uint8)
    encoding = Encoding(
        geometry, 3, np.zeros((3, 2, 3, 32), np.int8), reconstructions, None, np.full((1, 2), 3)
    )
    counts = np.array([[1, 2, 3], [0, 3, 2]])
    composite = encoding.composite(counts)
    assert composite.shape == (20, 40, 3)
    np.testing.assert_array_equal(encoding.composite(np.full((2, 3), 2)), encoding.reconstruction(2))
    expected = np.full((32, 48, 3), 128, np.uint8)
    for (cy, cx), n in np.ndenumerate(counts):
        cell = np.s_[cy * 16 : (cy + 1) * 16, cx * 16 : (cx + 1) * 16]
        if n:
            expected[cell] = reconstructions[n - 1][cell]
    np.testing.assert_array_equal(composite, network_shown(expected[:20, :40], WRITTEN))  # as shown


def test_a_bitstream_cut_to_k_iterations_decodes_to_the_progressive_frame_k(
    codec: ImageCodec, kodak_image
) -> None:
    rgb = np.ascontiguousarray(kodak_image[:64, :128])
    counts = np.array([[1, 2, 3, 3], [2, 1, 3, 2]])
    data = codec.bitstream(codec.encode(rgb, counts), counts)
    _, frames = codec.decompress_progressive(data)
    sizes = []
    cuts = codec.truncations(data, list(range(1, int(counts.max()) + 1)))
    for k, frame in enumerate(frames, start=1):
        cut = cuts[k - 1]
        sizes.append(len(cut))
        np.testing.assert_array_equal(Bitstream.from_bytes(cut).patch_iterations, np.minimum(counts, k))
        assert cut == codec.cut(data, np.minimum(counts, k))  # the prefixes' one pass codes each alike
        np.testing.assert_array_equal(codec.decompress(cut).image, frame)
        np.testing.assert_array_equal(codec.decompress(data, iterations=k).image, frame)  # not coded again
        *_, last = codec.decompress_progressive(data, iterations=k)[1]
        np.testing.assert_array_equal(last, frame)
    assert sizes == sorted(sizes) and sizes[-1] == len(data)


def test_only_tiles_with_marked_cells_run_one_iteration_more() -> None:
    geometry = Geometry(2048, 1024, 32, 1024)  # two tiles side by side
    one_more = np.zeros(geometry.cells, bool)
    one_more[3, 70] = True  # a cell of the right-hand tile
    left, right = geometry.tiles()
    assert EarlyExit("msssim", 0.95, 0, one_more).extra_for(left) == 0
    assert EarlyExit("msssim", 0.95, 0, one_more).extra_for(right) == 1
    assert EarlyExit("msssim", 0.95, 2).extra_for(right) == 2


def test_a_target_past_the_network_is_met_by_the_refinement_layer_and_decoded_alike(
    codec: ImageCodec, kodak_image
) -> None:
    from service.codec.ladder import prefix_sizes
    from service.codec.quality import psnr

    rgb = np.ascontiguousarray(kodak_image[:96, :160])
    network_only = ImageCodec(codec.client, "residual_gru", max_iterations=2, refinement_base_iterations=None)
    short = network_only.compress(rgb, Target("psnr", 45.0))
    assert not short.target_met and short.refinement_bytes == 0

    refined = ImageCodec(codec.client, "residual_gru", max_iterations=2, refinement_base_iterations=2)
    result = refined.compress(rgb, Target("psnr", 45.0))
    assert result.target_met and result.psnr >= 45.0 and result.refinement_bytes > 0
    stream = Bitstream.from_bytes(result.bitstream)
    # the network's iterations, then the layer's two steps: its block means, then the rest; over the network's
    # deblocked image, its chroma filtered (format 11) or not (9) as compress chose for this model and image
    assert stream.format_version in NETWORK_ONLY_FORMAT
    assert stream.steps == int(stream.patch_iterations.max()) + 2
    decoded = refined.decompress(result.bitstream).image
    np.testing.assert_array_equal(decoded, result.reconstruction)
    assert psnr(rgb, decoded) == pytest.approx(result.psnr, abs=1e-6)
    _, frames = refined.decompress_progressive(result.bitstream)
    frames = list(frames)
    assert len(frames) == stream.steps
    np.testing.assert_array_equal(frames[-1], decoded)
    means = refined.decompress(result.bitstream, iterations=stream.steps - 1).image
    network = refined.decompress(result.bitstream, iterations=stream.steps - 2).image
    np.testing.assert_array_equal(means, frames[-2])
    np.testing.assert_array_equal(network, frames[-3])
    assert psnr(rgb, network) < psnr(rgb, means) < psnr(rgb, decoded)
    steps = prefix_sizes(refined, result.bitstream)
    assert [k for k, _ in steps] == list(range(1, stream.steps + 1))
    assert steps[-1][1] == len(result.bitstream) and steps[-3][1] < steps[-2][1] < len(result.bitstream)
    cut = refined.truncations(result.bitstream, [stream.steps - 1])[0]  # a valid bitstream of its own
    assert Bitstream.from_bytes(cut).steps == stream.steps - 1
    np.testing.assert_array_equal(refined.decompress(cut).image, means)


def test_format_4_streams_from_the_previous_release_still_decode(codec: ImageCodec, kodak_image) -> None:
    """Written by commit 4842233 (refinement coefficients in LZMA planes) from kodim23[200:248, 300:364]
    at PSNR 40 dB with 3 network iterations offered and the layer over 2 (40.03 dB as encoded)."""
    from service.codec.quality import psnr

    data = (Path(__file__).parent / "data" / "format4_refined.rgic").read_bytes()
    stream = Bitstream.from_bytes(data)
    assert stream.format_version == 4 and stream.model_version == 4
    original = kodak_image[200:248, 300:364]
    refined = codec.decompress(data).image
    network = codec.decompress(data, iterations=stream.steps - 1).image
    assert psnr(original, refined) == pytest.approx(40.03, abs=0.1)
    assert psnr(original, network) < 36.0


def test_format_5_streams_from_the_previous_release_still_decode(codec: ImageCodec, kodak_image) -> None:
    """Written by commit e27f401 (the layer's block means at the AC's step) from kodim23[200:264, 300:396]
    at PSNR 36 dB: the layer alone, 36.02 dB as encoded."""
    from service.codec.quality import psnr

    data = (Path(__file__).parent / "data" / "format5_refined.rgic").read_bytes()
    stream = Bitstream.from_bytes(data)
    assert stream.format_version == 5 and stream.steps == 1
    assert psnr(kodak_image[200:264, 300:396], codec.decompress(data).image) == pytest.approx(36.02, abs=0.01)


def test_format_6_streams_from_the_previous_release_still_decode(codec: ImageCodec, kodak_image) -> None:
    """Written by commit cf18251 from kodim23[200:264, 300:396] at MS-SSIM 0.95: the layer alone at step
    51.86, its block means at half of it (format 7 would have kept them at half of step 48)."""
    from service.codec.quality import msssim

    data = (Path(__file__).parent / "data" / "format6_refined.rgic").read_bytes()
    stream = Bitstream.from_bytes(data)
    assert stream.format_version == 6 and stream.steps == 1 and stream.refinement[2] == 1
    decoded = codec.decompress(data).image
    assert msssim(kodak_image[200:264, 300:396], decoded) == pytest.approx(0.95007, abs=1e-5)


@pytest.mark.parametrize(
    "target", [Target("psnr", 32.0), Target("psnr", 24.0), Target("msssim", 0.95), Target("msssim", 0.9)]
)
def test_both_coders_compete_at_every_quality_target_and_the_smaller_bitstream_wins(
    codec: ImageCodec, kodak_image, target: Target
) -> None:
    rgb = np.ascontiguousarray(kodak_image[:96, :160])
    result = codec.compress(rgb, target)
    assert result.target_met and "encode_seconds" in result.timings  # the network always ran
    assert result.timings["refinement_seconds"] > 0  # and so did the layer
    sizes = result.coder_bytes
    assert len(result.bitstream) == sizes[result.coder]
    if result.coder == "network":
        assert result.refinement_bytes == 0 and result.iterations > 0
    else:  # the layer over no iteration: smaller than the network's best, if the network met the target
        assert result.coder == "layer" and result.iterations == 0
        assert len(result.bitstream) < sizes.get("network", np.inf)
        stream = Bitstream.from_bytes(result.bitstream)
        assert stream.format_version == 11 and stream.steps == 2  # the layer's block means, then the rest
        # finer block means and adaptive steps for MS-SSIM; PSNR keeps the means at the AC's step
        assert stream.refinement[2] == (7 if target.kind == "msssim" else 4)  # and trained counts
        decoded = codec.decompress(result.bitstream)
        np.testing.assert_array_equal(decoded.image, result.reconstruction)
        assert decoded.timings["refinement_seconds"] > 0  # the layer's decode, reported apart


def test_targets_the_network_meets_cheaply_get_no_refinement_layer(codec: ImageCodec, kodak_image) -> None:
    rgb = np.ascontiguousarray(kodak_image[:96, :160])
    result = codec.compress(rgb, Target("msssim", 0.9))
    assert result.target_met and result.refinement_bytes == 0
    assert Bitstream.from_bytes(result.bitstream).format_version in (8, 10)  # no layer: 9 and 11 carry one


def test_a_refinement_layer_over_no_network_iteration_decodes_from_grey(
    codec: ImageCodec, kodak_image
) -> None:
    rgb = np.ascontiguousarray(kodak_image[:80, :112])
    whole = ImageCodec(codec.client, "residual_gru", max_iterations=3, refinement_base_iterations=0)
    result = whole.compress(rgb, Target("msssim", 0.995))
    assert result.target_met and result.iterations == 0 and result.refinement_bytes > 0
    stream = Bitstream.from_bytes(result.bitstream)
    assert stream.steps == 2 and int(stream.patch_iterations.max()) == 0  # the block means, then the rest
    np.testing.assert_array_equal(whole.decompress(result.bitstream).image, result.reconstruction)
    np.testing.assert_array_equal(
        whole.decompress(result.bitstream, iterations=0).image, np.full_like(rgb, 128)
    )
    _, frames = whole.decompress_progressive(result.bitstream)
    means, last = list(frames)
    np.testing.assert_array_equal(means, whole.decompress(result.bitstream, iterations=1).image)
    np.testing.assert_array_equal(last, result.reconstruction)
    with pytest.raises(BadParameter, match="refinement layer"):  # the layer's steps are cut by steps alone
        whole.cut(result.bitstream, stream.patch_iterations)


def test_version_3_streams_still_decode_after_its_files_left_models(codec: ImageCodec, kodak_image) -> None:
    """Written by version 3 from kodim23[200:264, 300:396] at MS-SSIM 0.9 (0.910328 as encoded; version 4
    wrote the same bytes). Version 3's SavedModel left ``models/`` in session 13: version 4, its weights
    bit for bit, decodes it (``EQUIVALENT_VERSIONS``). The MS-SSIM was measured on another machine: CPUs
    with bfloat16 decode in it (decision 30) and oneDNN's kernels differ between CPUs, which moves it by
    about 1e-5; another model's weights would move it by far more."""
    from service.codec.quality import msssim

    data = (Path(__file__).parent / "data" / "version3_network.rgic").read_bytes()
    assert Bitstream.from_bytes(data).model_version == 3
    decoded = codec.decompress(data)
    assert msssim(kodak_image[200:264, 300:396], decoded.image) == pytest.approx(0.910328, abs=1e-4)
