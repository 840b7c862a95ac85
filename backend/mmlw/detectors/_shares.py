"""Attribution shared by detectors whose score has no per-sensor decomposition."""

from __future__ import annotations

import numpy as np

__all__ = ["squared_z_share"]


def squared_z_share(Z: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Split each score over sensors in proportion to ``Z**2``; rows sum to ``scores``.

    A row with all-zero deviations is split evenly.

    >>> squared_z_share(np.array([[3.0, 1.0], [0.0, 0.0]]), np.array([2.0, 1.0])).tolist()
    [[1.8, 0.2], [0.5, 0.5]]
    """
    weights = Z**2
    total = weights.sum(axis=1, keepdims=True)
    share = np.divide(weights, total, out=np.full_like(weights, 1 / Z.shape[1]), where=total > 0)
    return share * scores[:, None]
