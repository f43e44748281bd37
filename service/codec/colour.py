"""sRGB to CIELAB (D65) and CIEDE2000: one implementation for rate control's smooth-patch rules, the viewer
benchmark's colour measures and the model evaluation's colour error."""

from __future__ import annotations

import numpy as np

__all__ = ["BORDER", "ciede2000", "linear_to_lab", "mean_inside", "srgb_to_lab", "srgb_to_linear"]

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


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (Sharma, Wu and Dalal 2005) between Lab arrays [..., 3]."""
    l1, a1, b1 = np.moveaxis(lab1, -1, 0)
    l2, a2, b2 = np.moveaxis(lab2, -1, 0)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean**7 / (c_mean**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dl, dc = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0.0, dh)
    dhh = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_mean, cp_mean = (l1 + l2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(
        c1p * c2p == 0,
        h_sum,
        np.where(
            np.abs(h1p - h2p) <= 180, h_sum / 2, np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2)
        ),
    )
    t = (
        1
        - 0.17 * np.cos(np.radians(h_mean - 30))
        + 0.24 * np.cos(np.radians(2 * h_mean))
        + 0.32 * np.cos(np.radians(3 * h_mean + 6))
        - 0.20 * np.cos(np.radians(4 * h_mean - 63))
    )
    d_theta = 30 * np.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_mean**7 / (cp_mean**7 + 25.0**7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((dl / s_l) ** 2 + (dc / s_c) ** 2 + (dhh / s_h) ** 2 + r_t * (dc / s_c) * (dhh / s_h))


#: How far from the image border ``mean_inside(error, BORDER)`` starts: Kodak's scans carry a
#: frame of grey, black and white lines one to three pixels wide, and our network codes a frame's thin
#: lines, and the patches beside them, with more colour error than WebP does at the same bytes
#: (docs/decisions.md 37).
BORDER = 16


def mean_inside(error: np.ndarray, inside: int = 0) -> float:
    """Mean of a per-pixel ``error`` [H,W]; with ``inside``, over the pixels at least that far from the
    border (all of them in an image too small to leave any)."""
    if inside and min(error.shape) > 2 * inside:
        error = error[inside:-inside, inside:-inside]
    return float(error.mean())
