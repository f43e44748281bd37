"""sRGB to CIELAB (D65): one implementation for rate control's smooth-patch rules and the viewer
benchmark's colour measures."""

from __future__ import annotations

import numpy as np

__all__ = ["linear_to_lab", "srgb_to_lab", "srgb_to_linear"]

_SRGB_LINEAR = (((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4).astype(np.float64)
_SRGB_LINEAR[:11] = np.arange(11) / 255.0 / 12.92  # the linear segment (values up to 0.04045)
_WHITE = np.array([0.95047, 1.0, 1.08883])  # D65
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)


def srgb_to_linear(rgb: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Linear-light RGB (0-1) of sRGB uint8 ``rgb`` [..., 3]."""
    return _SRGB_LINEAR.astype(dtype)[rgb]


def linear_to_lab(linear: np.ndarray) -> np.ndarray:
    """CIELAB [..., 3] of linear-light RGB [..., 3]."""
    xyz = linear @ _RGB_TO_XYZ.T.astype(linear.dtype) / _WHITE.astype(linear.dtype)
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) float64 [..., 3] of sRGB uint8 ``rgb`` [..., 3]."""
    return linear_to_lab(srgb_to_linear(rgb))
