"""Patch jumps, grid blocking and edge fidelity against values that are known."""

import numpy as np

from benchmarks.colour import JND, edge_fidelity, grid_blocking, mean_ciede2000, patch_jumps


def test_a_shift_of_one_smooth_patch_is_a_jump_and_a_uniform_shift_is_not() -> None:
    original = np.full((64, 96, 3), 120, np.uint8)
    uniform = original + 6  # the whole area shifted alike: no edge anywhere
    assert patch_jumps(original, uniform) == (0, 0.0)
    blocky = original.copy()
    blocky[:32, 32:64] += 6  # one patch brighter: jumps to its three neighbours
    count, largest = patch_jumps(original, blocky)
    assert count == 3 and largest > JND
    assert mean_ciede2000(original, original) == 0.0 and mean_ciede2000(original, blocky) > 0


def test_busy_patches_are_not_counted() -> None:
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    shifted = original.copy()
    shifted[:32, :32] = np.clip(original[:32, :32].astype(int) + 20, 0, 255)
    assert patch_jumps(original, shifted)[0] == 0


def test_block_means_show_on_the_8_px_grid_and_a_blur_does_not() -> None:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:96]
    original = np.clip(128 + 40 * np.sin(x / 7.0) * np.cos(y / 9.0) + rng.normal(0, 3, (64, 96)), 0, 255)
    original = np.repeat(original[..., None], 3, axis=2).astype(np.uint8)
    assert grid_blocking(original, original) == 0.0
    means = original.reshape(8, 8, 12, 8, 3).astype(np.float64).mean(axis=(1, 3), keepdims=True)
    blocks = np.broadcast_to(means, (8, 8, 12, 8, 3)).reshape(64, 96, 3).round().astype(np.uint8)
    assert grid_blocking(original, blocks) > 1.0  # every step is on the grid
    shifted = np.roll(blocks, (4, 4), axis=(0, 1))  # the same blocks off the grid: steps elsewhere
    assert grid_blocking(original, shifted) < 0.0
    blurred = (original.astype(np.float64) + np.roll(original, 1, axis=1) + np.roll(original, 1, axis=0)) / 3
    assert abs(grid_blocking(original, blurred.astype(np.uint8))) < 0.1


def test_colour_error_inside_the_border_leaves_the_frame_out() -> None:
    original = np.full((64, 96, 3), 120, np.uint8)
    framed = original.copy()
    framed[:2] = 0  # a dark line along the top, as Kodak's scans have
    assert mean_ciede2000(original, framed) > 0
    assert mean_ciede2000(original, framed, inside=16) == 0.0
    inner = original.copy()
    inner[30:34, 40:44] = 200
    assert mean_ciede2000(original, inner, inside=16) > mean_ciede2000(original, inner)
    small = np.full((20, 20, 3), 120, np.uint8)
    assert mean_ciede2000(small, small + 9, inside=16) == mean_ciede2000(small, small + 9)  # too small


def _diagonal_edge() -> np.ndarray:
    """A dark band and a light one meeting along a 30° line, slightly soft (as a photo's edge is)."""
    y, x = np.mgrid[0:96, 0:128].astype(np.float64)
    distance = (y - 0.577 * x - 20) / np.hypot(1, 0.577)
    luma = 60 + 140 / (1 + np.exp(-distance))
    return np.repeat(luma[..., None], 3, axis=2).round().astype(np.uint8)


def test_a_staircase_turns_an_edge_and_a_blur_does_not() -> None:
    original = _diagonal_edge()
    assert edge_fidelity(original, original) == (0.0, 0.0)
    # the edge as 8×8 blocks would code it with their means alone: a staircase
    means = original.reshape(12, 8, 16, 8, 3).astype(np.float64).mean(axis=(1, 3), keepdims=True)
    stairs = np.broadcast_to(means, (12, 8, 16, 8, 3)).reshape(96, 128, 3).round().astype(np.uint8)
    turn, error = edge_fidelity(original, stairs)
    blurred = original.astype(np.float64)
    for axis in (0, 1):  # a 3-tap blur each way, rounded: softer, same direction
        blurred = (np.roll(blurred, 1, axis) + blurred + np.roll(blurred, -1, axis)) / 3
    soft_turn, soft_error = edge_fidelity(original, blurred.round().astype(np.uint8))
    assert turn > 10.0 and soft_turn < 2.0
    assert error > soft_error > 0.0
    assert edge_fidelity(np.full((32, 32, 3), 90, np.uint8), stairs[:32, :32]) == (0.0, 0.0)  # no edges
