"""What a viewer sees: colour error (CIEDE2000), visible jumps between patches in smooth areas,
blocking on the 8-pixel grid, and how edges come through (their direction and the error along them).

A *jump* is where two adjacent ``PATCH``-pixel patches, both smooth in the original (CIELAB L standard
deviation below ``SMOOTH_L_STD``), are decoded with mean-colour offsets that differ by more than one
just-noticeable difference (``JND``, ΔE*ab 2.3): offset(p) = mean Lab of the decoded patch minus that of
the original. A codec that shifts a whole smooth area alike shows no edge; one that shifts neighbouring
patches differently shows rectangles.
"""

from __future__ import annotations

import numpy as np

from service.codec.colour import BORDER, ciede2000, mean_inside, srgb_to_lab

__all__ = [
    "BLOCK",
    "BORDER",
    "JND",
    "PATCH",
    "SMOOTH_L_STD",
    "ciede2000",
    "ciede2000_error",
    "edge_fidelity",
    "grid_blocking",
    "mean_ciede2000",
    "mean_inside",
    "patch_jumps",
    "rgb_to_lab",
]

PATCH = 32
JND = 2.3
SMOOTH_L_STD = 6.0


#: sRGB uint8 [..., 3] → CIELAB (D65) float64 [..., 3]: the service's conversion.
rgb_to_lab = srgb_to_lab


def ciede2000_error(original: np.ndarray, decoded: np.ndarray) -> np.ndarray:
    """CIEDE2000 of every pixel of two uint8 RGB images [H,W,3]: float64 [H,W]."""
    return ciede2000(rgb_to_lab(original), rgb_to_lab(decoded))


def mean_ciede2000(original: np.ndarray, decoded: np.ndarray, inside: int = 0) -> float:
    """Mean CIEDE2000 over the pixels of two uint8 RGB images [H,W,3] (``inside``: see
    :func:`mean_inside`)."""
    return mean_inside(ciede2000_error(original, decoded), inside)


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
#: luma from sRGB (BT.601), as the blocking and edge measures take it
_LUMA = np.array([0.299, 0.587, 0.114])


def grid_blocking(original: np.ndarray, decoded: np.ndarray, period: int = BLOCK) -> float:
    """Blocking on the ``period``-pixel grid: the ratio of mean |luma step| across grid lines (horizontal
    and vertical) to the mean |luma step| elsewhere, in ``decoded`` minus the same ratio in ``original``
    (so natural edges that happen to lie on the grid do not count). 0: the grid does not show."""

    def ratio(image: np.ndarray) -> float:
        luma = image.astype(np.float64) @ _LUMA
        dx = np.abs(np.diff(luma, axis=1))  # between column j and j+1
        dy = np.abs(np.diff(luma, axis=0))
        on_x = (np.arange(dx.shape[1]) % period) == period - 1
        on_y = (np.arange(dy.shape[0]) % period) == period - 1
        across = np.concatenate([dx[:, on_x].ravel(), dy[on_y].ravel()]).mean()
        elsewhere = np.concatenate([dx[:, ~on_x].ravel(), dy[~on_y].ravel()]).mean()
        return float(across / max(elsewhere, 1e-9))

    return ratio(decoded) - ratio(original)


#: The edges ``edge_fidelity`` looks at: the original's strongest luma gradients (this top share of its
#: pixels, and at least ``EDGE_FLOOR`` levels per pixel), and the pixels within ``EDGE_REACH`` of them.
EDGE_SHARE = 0.05
EDGE_FLOOR = 10.0
EDGE_REACH = 2


def _smoothed_gradients(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luma gradients (along x, along y) of uint8 ``image`` [H,W,3] after two [1 2 1]/4 passes each way
    (so that single-pixel noise does not set an edge's direction)."""
    luma = image.astype(np.float64) @ _LUMA
    for _ in range(2):
        for axis in (0, 1):
            padded = np.pad(luma, [(1, 1) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
            n = luma.shape[axis]
            taps = enumerate((0.25, 0.5, 0.25))
            luma = sum(w * np.take(padded, range(o, o + n), axis=axis) for o, w in taps)
    return np.gradient(luma, axis=1), np.gradient(luma, axis=0)


def edge_fidelity(original: np.ndarray, decoded: np.ndarray) -> tuple[float, float]:
    """(direction error in degrees, mean |luma error| near edges) at the original's strongest edges.

    The direction error is the gradient-weighted mean angle between each edge pixel's gradient direction
    in the original and in ``decoded``: a diagonal edge coded as a staircase of 8×8 blocks turns towards
    the grid's axes where a blurred one keeps its direction. The luma error is over the pixels within
    ``EDGE_REACH`` of those edges: blur, ringing and staircases alike. (0.0, 0.0) without edges."""
    gx, gy = _smoothed_gradients(original)
    hx, hy = _smoothed_gradients(decoded)
    magnitude = np.hypot(gx, gy)
    edges = magnitude >= max(float(np.quantile(magnitude, 1 - EDGE_SHARE)), EDGE_FLOOR)
    if not edges.any():
        return 0.0, 0.0
    # orientations (mod 180°) compared as doubled angles, so that an edge's two sides agree
    turned = np.abs(np.angle((gx + 1j * gy) ** 2 * np.conj((hx + 1j * hy) ** 2))) / 2
    weights = magnitude[edges]
    direction = float(np.degrees((turned[edges] * weights).sum() / weights.sum()))
    near = edges.copy()
    for _ in range(EDGE_REACH):
        p = np.pad(near, 1)
        near = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    error = np.abs((original.astype(np.float64) - decoded) @ _LUMA)[near]
    return direction, float(error.mean())
