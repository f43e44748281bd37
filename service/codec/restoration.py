"""The receiver's restoration filter: a servable of its own beside the codec (``models/restoration``), which
TF Serving runs on the GPU and the embedded backend on CPU, applied to the refinement layer's image where
its payload names a filter version (``refinement.restoration_version``).

The layer's step search measures the restored image, so the reported quality is what a receiver with the
filter shows; the filter's float output can differ by a unit in the last place between CPU and GPU, which
no later step depends on (the entropy-coded bits never do).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from service.backend.client import BackendClient
from service.codec import refinement
from service.errors import ModelVersionNotServed

__all__ = ["MODEL_NAME", "RestoredTransform", "Restorer"]

MODEL_NAME = "restoration"
#: Pixels per backend call; taller images go in row strips.
_MAX_PIXELS_PER_CALL = 1_048_576
#: Rows a strip reads past those it keeps on each side: the filter's reach is 14 pixels (seven 3×3
#: convolutions at half resolution); even, so strips keep the 2×2 cells and the 8×8 grid phase.
_OVERLAP = 16


class Restorer:
    """The newest served version of the restoration servable, and the filter run through the backend."""

    def __init__(self, client: BackendClient, model_name: str = MODEL_NAME) -> None:
        self.client, self.model_name = client, model_name

    def version(self) -> int | None:
        """The version new bitstreams name (the newest served, asked each time as the codec's version
        is), or None where the backend serves none."""
        try:
            versions = self.client.available_versions(self.model_name)
        except ModelVersionNotServed:
            return None
        return versions[-1] if versions else None

    def restore(self, image: np.ndarray, step: float, version: int) -> np.ndarray:
        """``image`` (uint8 [H,W,3]) restored by filter ``version`` for the layer's quantiser ``step``.
        Raises ``ModelVersionNotServed`` where the backend does not serve that version."""
        height, width = image.shape[:2]
        rows = max(2 * _OVERLAP, (_MAX_PIXELS_PER_CALL // max(width, 1)) // 8 * 8)
        out = np.empty_like(image)
        for top in range(0, height, rows):
            start = max(0, top - _OVERLAP)
            end = min(height, top + rows + _OVERLAP)
            answer = self.client.predict(
                self.model_name,
                version,
                "restore",
                {"image": image[None, start:end], "step": np.array([step], np.float32)},
            )["image"][0]
            out[top : top + rows] = answer[top - start : top - start + min(rows, height - top)]
        return out


class RestoredTransform:
    """A layer transform whose trials are what a receiver with the filter shows: each trial's image
    restored by ``restore`` (image, step → image), and its payload naming filter ``version``."""

    def __init__(
        self,
        transform: refinement.ResidualTransform,
        restore: Callable[[np.ndarray, float], np.ndarray],
        version: int,
    ) -> None:
        self.transform, self.restore, self.version = transform, restore, version

    def trial(self, step: float) -> refinement.Trial:
        trial = self.transform.trial(step)
        trial.image = self.restore(trial.image, trial.step)
        trial.restoration = self.version
        return trial
