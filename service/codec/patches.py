"""Image geometry: padding to whole cells, tiles sent to the backend, and rate-control patches.

::

    image ─pad (edge)─▶ padded image (multiple of 16)
       tiles:   tile_size squares (last row/column smaller) — one backend input each
       patches: patch_size squares — one iteration count each (the rate-control unit)
       cells:   16×16 — one latent position, 32 bits per iteration

Tiles are multiples of patches, so every patch lies in exactly one tile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.codec.colour import linear_to_lab, srgb_to_linear

__all__ = ["CELL_SIZE", "Geometry", "Tile"]

#: Pixels per latent position along each side (the model's total stride).
CELL_SIZE = 16
#: A patch whose CIELAB lightness L* varies less than this (standard deviation) is smooth: a colour
#: offset there shows (the viewer benchmark's criterion, benchmarks/colour.py).
SMOOTH_LIGHTNESS_STD = 6.0


def lightness(rgb: np.ndarray) -> np.ndarray:
    """CIELAB L* (D65) of sRGB uint8 ``rgb`` [..., 3], float32 [...]."""
    linear = srgb_to_linear(rgb, np.float32)
    y = linear @ np.array([0.2126729, 0.7151522, 0.0721750], np.float32)
    return np.where(y > (6 / 29) ** 3, 116 * np.cbrt(y) - 16, y * 903.2963).astype(np.float32)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Tile:
    y: int  # pixel offsets in the padded image
    x: int
    height: int
    width: int

    @property
    def cell_slice(self) -> tuple[slice, slice]:
        return (
            slice(self.y // CELL_SIZE, (self.y + self.height) // CELL_SIZE),
            slice(self.x // CELL_SIZE, (self.x + self.width) // CELL_SIZE),
        )

    @property
    def pixel_slice(self) -> tuple[slice, slice]:
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)


@dataclass(frozen=True)
class Geometry:
    """How an image of ``width`` × ``height`` is cut into tiles, patches and cells."""

    width: int
    height: int
    patch_size: int = 32
    tile_size: int = 1024

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError("image must be at least 1x1")
        if self.patch_size % CELL_SIZE or self.patch_size <= 0:
            raise ValueError(f"patch size must be a positive multiple of {CELL_SIZE}")
        if self.tile_size % self.patch_size or self.tile_size <= 0:
            raise ValueError("tile size must be a positive multiple of the patch size")

    @property
    def padded_height(self) -> int:
        return _ceil_div(self.height, CELL_SIZE) * CELL_SIZE

    @property
    def padded_width(self) -> int:
        return _ceil_div(self.width, CELL_SIZE) * CELL_SIZE

    @property
    def cells(self) -> tuple[int, int]:
        return self.padded_height // CELL_SIZE, self.padded_width // CELL_SIZE

    @property
    def patches(self) -> tuple[int, int]:
        return _ceil_div(self.padded_height, self.patch_size), _ceil_div(self.padded_width, self.patch_size)

    @property
    def cells_per_patch(self) -> np.ndarray:
        """Number of cells in each patch, [patches_y, patches_x] (edge patches may be smaller)."""
        per = self.patch_size // CELL_SIZE
        (cells_y, cells_x), (patches_y, patches_x) = self.cells, self.patches
        rows = np.minimum(per, cells_y - per * np.arange(patches_y))
        cols = np.minimum(per, cells_x - per * np.arange(patches_x))
        return np.outer(rows, cols)

    def tiles(self) -> list[Tile]:
        """Tiles in raster order covering the padded image."""
        out = []
        for y in range(0, self.padded_height, self.tile_size):
            for x in range(0, self.padded_width, self.tile_size):
                out.append(
                    Tile(
                        y,
                        x,
                        min(self.tile_size, self.padded_height - y),
                        min(self.tile_size, self.padded_width - x),
                    )
                )
        return out

    def pad(self, rgb: np.ndarray) -> np.ndarray:
        """Edge-replicate ``rgb`` [H,W,3] to the padded size (cheap to code, no seam at the border)."""
        return np.pad(
            rgb,
            ((0, self.padded_height - self.height), (0, self.padded_width - self.width), (0, 0)),
            mode="edge",
        )

    def crop(self, padded: np.ndarray) -> np.ndarray:
        """The original-size region of an array whose last three axes are padded H, W, channels."""
        return padded[..., : self.height, : self.width, :]

    def smooth_patches(self, rgb: np.ndarray, lightness_std: float = SMOOTH_LIGHTNESS_STD) -> np.ndarray:
        """Whether each patch of sRGB ``rgb`` [H,W,3] is smooth (CIELAB L* standard deviation below
        ``lightness_std``), bool [patches_y, patches_x]; edge patches are judged on their pixels inside
        the image. One band of patches at a time, so memory stays small."""
        p = self.patch_size
        patches_x = self.patches[1]
        smooth = np.empty(self.patches, bool)
        band = np.empty((p, patches_x * p), np.float32)
        for row, top in enumerate(range(0, self.height, p)):
            rows = min(p, self.height - top)
            band.fill(np.nan)
            band[:rows, : self.width] = lightness(rgb[top : top + rows])
            smooth[row] = np.nanstd(band.reshape(p, patches_x, p), axis=(0, 2)) < lightness_std
        return smooth

    def patch_colours(self, rgb: np.ndarray) -> np.ndarray:
        """CIELAB of each patch's mean linear-light colour in sRGB ``rgb`` [H,W,3] (pixels inside the
        image), float32 [patches_y, patches_x, 3]; one band of patches at a time, so memory stays small."""
        p = self.patch_size
        columns = np.arange(0, self.width, p)
        widths = np.diff(np.append(columns, self.width))
        means = np.empty((*self.patches, 3), np.float32)
        for row, top in enumerate(range(0, self.height, p)):
            band = srgb_to_linear(rgb[top : top + p], np.float32).sum(axis=0)
            sums = np.add.reduceat(band, columns, axis=0)
            means[row] = sums / (widths * min(p, self.height - top))[:, None]
        return linear_to_lab(means)

    def cell_iterations(self, patch_iterations: np.ndarray) -> np.ndarray:
        """Per-cell iteration counts [cells_y, cells_x] from per-patch counts [patches_y, patches_x]."""
        per_patch = self.patch_size // CELL_SIZE
        expanded = np.repeat(np.repeat(patch_iterations, per_patch, axis=0), per_patch, axis=1)
        cells_y, cells_x = self.cells
        return expanded[:cells_y, :cells_x]
