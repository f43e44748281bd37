"""The quality ladder: each prefix's size and quality, and the choice of the shortest that meets a target."""

import itertools

import numpy as np
import pytest

from service.codec.ladder import (
    Rung,
    choose_rung,
    ladder_from_json,
    ladder_to_json,
    measure_ladder,
    rung_bitstream,
)
from service.codec.pipeline import ImageCodec
from service.codec.quality import msssim
from service.codec.rate_control import Target
from service.errors import BadParameter, NotInLadder
from service.settings import Settings
from service.wiring import image_codec

LADDER = [
    Rung(1, 100, 0.80, 20.0),
    Rung(2, 180, 0.90, 23.0),
    Rung(3, 300, 0.95, 26.5),
    Rung(4, 420, 0.97, None),
]


def test_the_shortest_prefix_meeting_a_quality_is_chosen() -> None:
    assert choose_rung(LADDER, msssim=0.9).steps == 2
    assert choose_rung(LADDER, msssim=0.9000001).steps == 3
    assert choose_rung(LADDER, msssim=0.5).steps == 1
    assert choose_rung(LADDER, psnr=26.0).steps == 3
    assert choose_rung(LADDER, psnr=60.0).steps == 4  # the exact image (PSNR None) meets any PSNR


def test_the_longest_prefix_within_a_size_is_chosen() -> None:
    assert choose_rung(LADDER, max_bytes=299).steps == 2
    assert choose_rung(LADDER, max_bytes=300).steps == 3
    assert choose_rung(LADDER, max_bytes=10**6).steps == 4


def test_what_no_prefix_can_give_is_refused_with_the_reason() -> None:
    with pytest.raises(NotInLadder, match=r"0\.9700 at most"):
        choose_rung(LADDER, msssim=0.98)
    with pytest.raises(NotInLadder, match="100 bytes"):
        choose_rung(LADDER, max_bytes=99)
    with pytest.raises(BadParameter):
        choose_rung(LADDER, msssim=0.9, max_bytes=200)
    with pytest.raises(BadParameter):
        choose_rung(LADDER)


def test_a_per_patch_rung_is_chosen_where_it_is_the_smallest_meeting_the_target() -> None:
    cut = Rung(3, 150, 0.91, 23.5, [[3, 1], [2, 2]])
    ladder = sorted([*LADDER, cut], key=lambda r: r.bytes)
    assert choose_rung(ladder, msssim=0.9) is cut  # the prefix meeting 0.90 takes 180 bytes
    assert choose_rung(ladder, msssim=0.905) is cut
    assert choose_rung(ladder, msssim=0.92).steps == 3 and choose_rung(ladder, msssim=0.92).counts is None
    assert choose_rung(ladder, max_bytes=179) is cut  # better than the 100-byte prefix
    assert choose_rung(ladder, max_bytes=200).bytes == 150  # 0.91 beats 0.90 at 180 bytes


def test_a_ladder_survives_json() -> None:
    assert ladder_from_json(ladder_to_json(LADDER)) == LADDER
    cut = Rung(3, 150, 0.91, 23.5, [[3, 1], [2, 2]])
    assert ladder_from_json(ladder_to_json([cut])) == [cut]
    shown = ladder_to_json([LADDER[0], cut], stored=False)
    assert [r["cut"] for r in shown] == ["prefix", "per-patch"]
    assert all("counts" not in r for r in shown)


@pytest.mark.parametrize("target", [Target("msssim", 0.95), Target("msssim", 0.8)])
def test_every_rung_of_an_odd_sized_image_decodes_to_the_quality_it_records(
    backend_client, kodak_image, target: Target
) -> None:
    codec = ImageCodec(backend_client, "residual_gru", patch_size=32, tile_size=64, max_iterations=8)
    rgb = np.ascontiguousarray(kodak_image[37:140, 301:466])  # 103 x 165: padding and partial tiles
    result = codec.compress(rgb, target)
    ladder = measure_ladder(codec, result.bitstream, rgb)
    assert [r.steps for r in ladder] == list(range(1, len(ladder) + 1))
    assert ladder[-1].bytes == len(result.bitstream)
    assert ladder[-1].msssim == pytest.approx(result.msssim, abs=1e-9)
    assert all(a.bytes < b.bytes for a, b in itertools.pairwise(ladder))
    for rung in ladder:
        prefix = codec.truncations(result.bitstream, [rung.steps])[0]
        assert len(prefix) == rung.bytes
        assert msssim(rgb, codec.decompress(prefix).image) == pytest.approx(rung.msssim, abs=1e-9)


@pytest.mark.parametrize(
    ("rows", "columns", "mixed"),
    [(slice(37, 140), slice(301, 466), True), (slice(200, 232), slice(96, 128), False)],
)
def test_compress_keeps_what_each_prefix_decodes_to(
    backend_client, kodak_image, rows: slice, columns: slice, mixed: bool
) -> None:
    # the network alone: a per-patch allocation (kept from its decode) or one patch (the first pass's)
    codec = ImageCodec(
        backend_client,
        "residual_gru",
        patch_size=32,
        tile_size=64,
        max_iterations=8,
        refinement_base_iterations=None,
    )
    rgb = np.ascontiguousarray(kodak_image[rows, columns])
    result = codec.compress(rgb, Target("msssim", 0.95), keep_frames=True)
    assert (len(np.unique(result.patch_iterations)) > 1) == mixed
    assert len(result.frames) == result.iterations
    for steps, frame in enumerate(result.frames, start=1):
        prefix = codec.truncations(result.bitstream, [steps])[0]
        assert np.array_equal(frame, codec.decompress(prefix).image)
    assert measure_ladder(codec, result.bitstream, rgb, result) == measure_ladder(
        codec, result.bitstream, rgb
    )
    # compress kept the bits it coded, so the ladder cuts them without decoding: as a receiver would
    receiver = ImageCodec(backend_client, "residual_gru", patch_size=32, tile_size=64, max_iterations=8)
    steps = list(range(1, result.iterations + 1))
    assert codec.truncations(result.bitstream, steps) == receiver.truncations(result.bitstream, steps)
    assert codec.compress(rgb, Target("msssim", 0.95)).frames == []  # kept only when asked


def test_compress_finds_allocations_below_within_its_counts_and_the_ladder_serves_them(
    backend_client, kodak_image
) -> None:
    codec = ImageCodec(
        backend_client,
        "residual_gru",
        patch_size=32,
        tile_size=1024,
        max_iterations=8,
        refinement_base_iterations=None,
        ladder_msssims=(0.85, 0.9, 0.93),
    )
    rgb = np.ascontiguousarray(kodak_image[100:292, 300:556])  # mixed counts: per-patch cuts below
    result = codec.compress(rgb, Target("msssim", 0.95), keep_frames=True)
    assert result.allocations_below
    ladder = measure_ladder(codec, result.bitstream, rgb, result)
    assert [r.bytes for r in ladder] == sorted(r.bytes for r in ladder)
    cuts = [r for r in ladder if r.counts is not None]
    prefixes = [r for r in ladder if r.counts is None]
    assert cuts
    nested = 0
    for allocation in result.allocations_below:
        assert (allocation.counts <= result.patch_iterations).all()
        assert not np.array_equal(
            allocation.counts, np.minimum(result.patch_iterations, allocation.counts.max())
        )
        data = codec.cut(result.bitstream, allocation.counts)
        decoded = codec.decompress(data).image
        assert np.array_equal(decoded, allocation.image)  # what compress measured is what is served
        assert msssim(rgb, decoded) == pytest.approx(allocation.msssim, abs=1e-9)
        assert allocation.msssim >= allocation.target
        # one tile, as the service sends an image this size: what a compress at that target writes,
        # wherever that compress gives no patch more iterations than the master (rate control is not
        # nested across targets everywhere: decision 44)
        fresh = codec.compress(rgb, Target("msssim", allocation.target))
        if (fresh.patch_iterations <= result.patch_iterations).all():
            nested += 1
            assert data == fresh.bitstream
        rung = next((r for r in cuts if r.counts == allocation.counts.tolist()), None)
        if rung is None:  # left out: a prefix as small gives more
            assert any(r.bytes <= len(data) and r.msssim >= allocation.msssim for r in prefixes)
        else:
            assert rung_bitstream(codec, result.bitstream, rung) == data
            assert (rung.bytes, rung.msssim) == (len(data), allocation.msssim) and rung.bytes < len(
                result.bitstream
            )
    assert nested >= len(result.allocations_below) - 1
    with pytest.raises(BadParameter, match="at most"):
        codec.cut(result.bitstream, result.patch_iterations + 1)
    assert codec.compress(rgb, Target("msssim", 0.95)).allocations_below == []  # only with the ladder


def test_below_a_bitstream_the_layer_made_the_ladder_holds_alternates_a_fresh_compress_would_write(
    backend_client, kodak_image
) -> None:
    # the service's codec: kodim23's upper half at 0.95 is the layer's alone (no network bits to cut)
    codec = image_codec(Settings(ladder_msssims=[0.85, 0.9]), backend_client)
    rgb = np.ascontiguousarray(kodak_image[:256])
    result = codec.compress(rgb, Target("msssim", 0.95), keep_frames=True)
    assert result.coder == "layer" and result.target_met
    shown = list(codec.step_images(result.bitstream))  # compress kept them without decoding it whole
    assert len(shown) == len(result.frames) == 2
    assert all(np.array_equal(a, b) for a, b in zip(result.frames, shown, strict=True))
    assert result.allocations_below
    ladder = measure_ladder(codec, result.bitstream, rgb, result)
    alternates = [r for r in ladder if r.cut == "alternate"]
    assert alternates
    for allocation in result.allocations_below:
        assert allocation.bitstream is not None and allocation.msssim >= allocation.target
        decoded = codec.decompress(allocation.bitstream).image
        assert np.array_equal(decoded, allocation.image)  # what compress measured is what is served
        # what a compress at that target writes, where the network wins there
        fresh = codec.compress(rgb, Target("msssim", allocation.target))
        if fresh.coder == "network":
            assert allocation.bitstream == fresh.bitstream
    assert len({r.bitstream for r in alternates}) == len(alternates)  # one rung per bitstream
    for rung in alternates:
        assert rung_bitstream(codec, result.bitstream, rung) == rung.bitstream
        assert rung.bytes == len(rung.bitstream) < len(result.bitstream)
        chosen = choose_rung(ladder, msssim=rung.msssim)
        assert chosen.bytes <= rung.bytes
    assert ladder_from_json(ladder_to_json(ladder)) == ladder  # the store keeps the alternates' bytes
    shown = ladder_to_json(ladder, stored=False)
    assert "alternate" in [r["cut"] for r in shown] and all("bitstream" not in r for r in shown)
