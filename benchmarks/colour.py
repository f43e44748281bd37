"""What a viewer sees: colour error (CIEDE2000), visible jumps between patches in smooth areas, and
blocking on the 8-pixel grid.

A *jump* is where two adjacent ``PATCH``-pixel patches, both smooth in the original (CIELAB L standard
deviation below ``SMOOTH_L_STD``), are decoded with mean-colour offsets that differ by more than one
just-noticeable difference (``JND``, ΔE*ab 2.3): offset(p) = mean Lab of the decoded patch minus that of
the original. A codec that shifts a whole smooth area alike shows no edge; one that shifts neighbouring
patches differently shows rectangles.
"""

from __future__ import annotations

import numpy as np

from service.codec.colour import srgb_to_lab

__all__ = [
    "BLOCK",
    "JND",
    "PATCH",
    "SMOOTH_L_STD",
    "ciede2000",
    "grid_blocking",
    "mean_ciede2000",
    "patch_jumps",
    "rgb_to_lab",
]

PATCH = 32
JND = 2.3
SMOOTH_L_STD = 6.0


#: sRGB uint8 [..., 3] → CIELAB (D65) float64 [..., 3]: the service's conversion.
rgb_to_lab = srgb_to_lab


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


def mean_ciede2000(original: np.ndarray, decoded: np.ndarray) -> float:
    """Mean CIEDE2000 over the pixels of two uint8 RGB images [H,W,3]."""
    return float(ciede2000(rgb_to_lab(original), rgb_to_lab(decoded)).mean())


def _patch_stats(lab: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Per whole patch: mean Lab [py,px,3] and L standard deviation [py,px] (edge remainders dropped)."""
    py, px = lab.shape[0] // patch, lab.shape[1] // patch
    blocks = lab[: py * patch, : px * patch].reshape(py, patch, px, patch, 3)
    return blocks.mean(axis=(1, 3)), blocks[..., 0].std(axis=(1, 3))


def patch_jumps(original: np.ndarray, decoded: np.ndarray, patch: int = PATCH) -> tuple[int, float]:
    """Visible jumps between adjacent smooth patches: (count, the largest |offset difference| in ΔE*ab,
    0 if none)."""
    lab_o, lab_d = rgb_to_lab(original), rgb_to_lab(decoded)
    mean_o, std_o = _patch_stats(lab_o, patch)
    mean_d, _ = _patch_stats(lab_d, patch)
    offset = mean_d - mean_o
    smooth = std_o < SMOOTH_L_STD
    count, largest = 0, 0.0
    for axis in (0, 1):
        a = [slice(None), slice(None)]
        b = [slice(None), slice(None)]
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        both = smooth[tuple(a)] & smooth[tuple(b)]
        difference = np.linalg.norm(offset[tuple(a)] - offset[tuple(b)], axis=-1)[both]
        count += int((difference > JND).sum())
        largest = max(largest, float(difference.max(initial=0.0)))
    return count, largest


#: The block grid of the refinement layer (and JPEG's, WebP's): blocking is measured across its lines.
BLOCK = 8


def grid_blocking(original: np.ndarray, decoded: np.ndarray, period: int = BLOCK) -> float:
    """Blocking on the ``period``-pixel grid: the ratio of mean |luma step| across grid lines (horizontal
    and vertical) to the mean |luma step| elsewhere, in ``decoded`` minus the same ratio in ``original``
    (so natural edges that happen to lie on the grid do not count). 0: the grid does not show."""

    def ratio(image: np.ndarray) -> float:
        luma = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        dx = np.abs(np.diff(luma, axis=1))  # between column j and j+1
        dy = np.abs(np.diff(luma, axis=0))
        on_x = (np.arange(dx.shape[1]) % period) == period - 1
        on_y = (np.arange(dy.shape[0]) % period) == period - 1
        across = np.concatenate([dx[:, on_x].ravel(), dy[on_y].ravel()]).mean()
        elsewhere = np.concatenate([dx[:, ~on_x].ravel(), dy[~on_y].ravel()]).mean()
        return float(across / max(elsewhere, 1e-9))

    return ratio(decoded) - ratio(original)
