import numpy as np
import pytest

from service.codec.patches import CELL_SIZE, Geometry


@pytest.mark.parametrize("size", [(1, 1), (13, 7), (3, 10000), (768, 512), (1030, 1500)])
def test_pad_then_crop_gives_back_the_image(size: tuple[int, int]) -> None:
    width, height = size
    g = Geometry(width, height, patch_size=64, tile_size=1024)
    rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    padded = g.pad(rgb)
    assert padded.shape[0] % CELL_SIZE == 0 and padded.shape[1] % CELL_SIZE == 0
    np.testing.assert_array_equal(g.crop(padded), rgb)


def test_tiles_cover_the_padded_image_once() -> None:
    g = Geometry(1500, 1030, patch_size=64, tile_size=512)
    cover = np.zeros((g.padded_height, g.padded_width), int)
    for tile in g.tiles():
        assert tile.height % CELL_SIZE == 0 and tile.width % CELL_SIZE == 0
        cover[tile.pixel_slice] += 1
    assert np.all(cover == 1)


def test_cell_iterations_follow_patches() -> None:
    g = Geometry(100, 40, patch_size=32, tile_size=64)
    counts = np.array([[1, 2, 3, 4], [5, 6, 7, 8]], np.uint8)
    cells = g.cell_iterations(counts)
    assert cells.shape == g.cells == (3, 7)
    assert cells[0, 0] == 1 and cells[0, 2] == 2 and cells[2, 6] == 8
    assert g.cells_per_patch.tolist() == [[4, 4, 4, 2], [2, 2, 2, 1]]
    assert g.cells_per_patch.sum() == 3 * 7


def test_bad_geometry_is_refused() -> None:
    with pytest.raises(ValueError):
        Geometry(10, 10, patch_size=24)
    with pytest.raises(ValueError):
        Geometry(10, 10, patch_size=64, tile_size=96)


def test_smooth_patches_are_judged_by_lightness_inside_the_image() -> None:
    geometry = Geometry(width=70, height=40, patch_size=32)
    rgb = np.full((40, 70, 3), 200, np.uint8)
    rgb[:32, 32:64] = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)  # busy
    rgb[32::2, 64:] = 0  # the edge patch (8 rows x 6 columns inside the image): black and white stripes
    smooth = geometry.smooth_patches(rgb)
    assert smooth.shape == geometry.patches == (2, 3)
    assert smooth.tolist() == [[True, False, True], [True, True, False]]
