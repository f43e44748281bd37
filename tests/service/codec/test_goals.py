"""Compress's goals: every target that more iterations can reach is met, at any image size."""

import numpy as np
import pytest
from PIL import Image

from service.codec.encoding import EarlyExit
from service.codec.goals import QualityGoal, goal_for
from service.codec.patches import Geometry
from service.codec.pipeline import CompressResult, ImageCodec
from service.codec.quality import msssim, psnr
from service.codec.rate_control import Target
from service.codec.run import Candidate, CompressRun
from tests.conftest import KODAK

MAX_ITERATIONS = 8


@pytest.fixture(scope="module")
def codec(backend_client) -> ImageCodec:
    return ImageCodec(backend_client, "residual_gru", max_iterations=MAX_ITERATIONS)


def _run(codec: ImageCodec, rgb: np.ndarray) -> CompressRun:
    version = codec.current_version()
    geometry = Geometry(rgb.shape[1], rgb.shape[0], codec.patch_size, codec.tile_size)
    return CompressRun(codec, rgb, geometry, version, geometry.cells_per_patch * 32)


def _best(codec: ImageCodec, rgb: np.ndarray, measure) -> float:
    encoding = codec.encode(rgb, MAX_ITERATIONS)
    return max(measure(rgb, encoding.reconstruction(n)) for n in range(1, encoding.bits.shape[0] + 1))


def test_a_short_first_pass_is_extended_until_the_decoded_image_meets_the_target(codec, kodak_image) -> None:
    rgb = np.ascontiguousarray(kodak_image[:81, :113])  # odd sizes: the padded image is what the graph sees
    wanted = _best(codec, rgb, msssim) - 0.002
    run = _run(codec, rgb)
    run.first_pass(2, None)  # a first pass that stopped too soon
    goal = QualityGoal(Target("msssim", wanted))
    chosen, achieved = goal.choose(run, [run.uniform_candidate(2, 0.0)])
    assert achieved >= wanted and msssim(rgb, chosen.image) == pytest.approx(achieved)
    assert int(chosen.counts.max()) > 2 and run.iterations_run > 2


def test_a_candidate_judged_on_its_composite_is_decoded_before_it_is_reported(codec, kodak_image) -> None:
    rgb = np.ascontiguousarray(kodak_image[:128, :192])
    run = _run(codec, rgb)
    run.first_pass(4, None)
    counts = run.uniform_counts(4)
    counts[:, : counts.shape[1] // 2] = 2  # mixed counts: the composite is not what the receiver decodes
    composite = run.composite(counts)
    candidate = Candidate(counts, composite, None, 1.0, False, run.raw_bits(counts), decoded=False)
    chosen, achieved = QualityGoal(Target("msssim", 0.5)).choose(run, [candidate])
    assert chosen.decoded and not np.array_equal(chosen.image, composite)
    assert np.array_equal(chosen.image, run.decoded(counts)) and achieved == msssim(rgb, chosen.image)


@pytest.mark.parametrize(("height", "width"), [(1, 1), (7, 13), (13, 7), (321, 481), (481, 321), (40, 1030)])
@pytest.mark.parametrize("kind", ["msssim", "psnr"])
def test_every_reachable_target_is_met_at_odd_sizes(codec, kodak_image, height, width, kind) -> None:
    tall = np.concatenate([kodak_image, kodak_image[::-1]], axis=0)
    rgb = np.ascontiguousarray(np.tile(tall, (1, 2, 1))[:height, :width])
    measure = psnr if kind == "psnr" else msssim
    best = _best(codec, rgb, measure)
    if not np.isfinite(best):
        pytest.fail("a finite best quality was expected")
    wanted = min(best - (0.01 if kind == "psnr" else 2e-4), 0.95 if kind == "msssim" else 30.0)
    result = codec.compress(rgb, Target(kind, wanted))
    assert result.target_met, (best, wanted, getattr(result, kind))
    assert measure(rgb, codec.decompress(result.bitstream).image) == pytest.approx(
        getattr(result, kind), abs=1e-6
    )


def test_goal_for_picks_the_strategy_of_the_target_kind() -> None:
    assert goal_for(Target("bpp", 0.5)).kind == "bpp"
    assert goal_for(Target("psnr", 30)).kind == "psnr"
    assert goal_for(Target("msssim", 0.9)).kind == "msssim"


def test_a_multi_tile_image_stops_where_its_tiles_meet_the_target(backend_client, kodak_image) -> None:
    small_tiles = ImageCodec(backend_client, "residual_gru", tile_size=64, max_iterations=MAX_ITERATIONS)
    rgb = np.ascontiguousarray(kodak_image[:128, :256])  # 8 tiles, busy and flat ones
    encoding = small_tiles.encode(rgb, MAX_ITERATIONS, early_exit=EarlyExit("msssim", 0.9, 0))
    assert encoding.bits.shape[0] < MAX_ITERATIONS  # no call ran every iteration offered
    result = small_tiles.compress(rgb, Target("msssim", 0.9))
    # one iteration past the aim where smooth patches' colour settles, or their floor
    most = max(encoding.bits.shape[0] + 1, small_tiles.smooth_patch_iterations)
    assert result.target_met and int(result.patch_iterations.max()) <= most < MAX_ITERATIONS
    decoded = small_tiles.decompress(result.bitstream).image
    assert msssim(rgb, decoded) == pytest.approx(result.msssim, abs=1e-6)


def test_smooth_patches_get_iterations_until_their_colour_settles(backend_client, kodak_image) -> None:
    """kodim23's blurred background: at the fewest iterations meeting MS-SSIM 0.95, neighbouring smooth
    patches differ in mean colour by visible steps (ΔE*ab above 2.3); giving smooth patches iterations
    until their colour settles removes some of them, for some bytes (9 → 3 with the backend in
    float32, 7 → 5 in bfloat16: which patches land near the threshold moves with the arithmetic).
    Version 5 shows them; version 6, trained with a colour term, leaves 2 without the rule, so the
    mechanism is tested on version 5."""
    rgb = kodak_image
    geometry = Geometry(rgb.shape[1], rgb.shape[0], 32, 1024)
    smooth = geometry.smooth_patches(rgb)
    original = geometry.patch_colours(rgb)

    def visible_steps(delta_e: float) -> tuple[int, int]:
        codec = ImageCodec(
            backend_client,
            "residual_gru",
            model_version=5,
            max_iterations=8,
            smooth_patch_delta_e=delta_e,
            refinement_base_iterations=None,  # the network's rule alone
        )
        result = codec.compress(rgb, Target("msssim", 0.95))
        assert result.target_met
        offsets = geometry.patch_colours(result.reconstruction) - original
        steps = 0
        for a, b in (
            ((slice(None), slice(1, None)), (slice(None), slice(None, -1))),
            ((slice(1, None), slice(None)), (slice(None, -1), slice(None))),
        ):
            both = smooth[a] & smooth[b]
            steps += int((np.linalg.norm(offsets[a] - offsets[b], axis=-1)[both] > 2.3).sum())
        return steps, len(result.bitstream)

    (steps_without, bytes_without), (steps_with, bytes_with) = visible_steps(0), visible_steps(1.2)
    assert steps_without >= 5 and steps_with < steps_without
    assert bytes_with > bytes_without


def test_busy_patches_get_iterations_until_their_mean_colour_settles(backend_client) -> None:
    """kodim12: rate control, following MS-SSIM, gives the patches along the image's border one
    iteration where the inside gets three, and they come back tinted (mean colour off by more than a
    JND). The busy-patch floor gives each patch iterations until its mean colour is within ΔE 2.3 (of
    the counts the first pass ran), and the target is still met (measured: 47 tinted busy patches → 3,
    12,548 → 12,104 bytes)."""
    rgb = np.asarray(Image.open(KODAK / "kodim12.png").convert("RGB"))
    geometry = Geometry(rgb.shape[1], rgb.shape[0], 32, 1024)
    busy = ~geometry.smooth_patches(rgb)
    original = geometry.patch_colours(rgb)

    def compressed(delta_e: float) -> tuple[int, CompressResult]:
        codec = ImageCodec(
            backend_client,
            "residual_gru",
            max_iterations=MAX_ITERATIONS,
            busy_patch_delta_e=delta_e,
            refinement_base_iterations=None,  # the network alone
        )
        result = codec.compress(rgb, Target("msssim", 0.95))
        assert result.target_met
        offsets = np.linalg.norm(geometry.patch_colours(result.reconstruction) - original, axis=-1)
        return int((offsets[busy] > 2.3).sum()), result

    tinted_without, without = compressed(0)
    tinted_with, with_floor = compressed(2.3)
    assert tinted_without >= 10
    assert tinted_with < tinted_without / 2
    border = np.ones(geometry.patches, bool)
    border[1:-1, 1:-1] = False
    assert with_floor.patch_iterations[border].mean() > without.patch_iterations[border].mean() + 0.3


def test_the_refinement_layer_is_not_chosen_where_it_shows_more_jumps_in_gradients(codec) -> None:
    """kodim09's sky: a layer smaller than the network's candidate loses if its smooth patches' colours
    step where the network's do not (from MS-SSIM 0.93; below, bytes alone decide)."""
    rgb = np.asarray(Image.open(KODAK / "kodim09.png").convert("RGB"))
    run = _run(codec, rgb)
    counts = np.zeros(run.geometry.patches, np.int64)
    stepped = rgb.copy()  # every other smooth patch 8 levels brighter: a visible step between neighbours
    for y, x in zip(*np.nonzero(run.smooth), strict=True):
        if (y + x) % 2:
            patch = np.s_[32 * y : 32 * y + 32, 32 * x : 32 * x + 32]
            stepped[patch] = np.clip(rgb[patch].astype(np.int16) + 8, 0, 255)

    def candidate(image: np.ndarray, size: int) -> Candidate:
        return Candidate(counts, image, b"x" * size, 0.95, True, 8.0 * size)

    assert run.visible_jumps(stepped) > 0 == run.visible_jumps(rgb)
    for target, layer_kept in ((0.95, False), (0.92, True)):
        goal = QualityGoal(Target("msssim", target))
        assert goal._layer_wins(run, candidate(stepped, 900), candidate(rgb, 1000)) is layer_kept
    goal = QualityGoal(Target("msssim", 0.95))
    assert goal._layer_wins(run, candidate(rgb, 900), candidate(stepped, 1000))  # fewer bytes and jumps
    assert not goal._layer_wins(run, candidate(rgb, 1000), candidate(rgb, 900))  # more bytes


def test_an_allocation_that_missed_is_not_tried_again(codec, kodak_image) -> None:
    """Whole counts make an allocation clear its aim by far: the next aim starts from its estimate, or
    rate control offered the same allocation again (validation photo 160068 at 0.90: 8 tries of one
    allocation, then 2 iterations everywhere, 44 % more bytes)."""
    rgb = np.ascontiguousarray(kodak_image[:256, :384])
    run = _run(codec, rgb)
    goal = QualityGoal(Target("msssim", 0.95))
    goal.measure = lambda a, b: msssim(a, b) - 0.002  # composites miss more often
    run.first_pass(MAX_ITERATIONS, EarlyExit("msssim", goal.aim, codec.extra_iterations))
    offered = []
    allocate = run.allocate

    def recorded(*args, **kwargs):
        counts = allocate(*args, **kwargs)
        if counts is not None:
            offered.append(counts.tobytes())
        return counts

    run.allocate = recorded
    goal.candidates(run)
    assert len(offered) >= 2 and len(set(offered)) == len(offered)
