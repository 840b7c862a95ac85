"""Turning scores into flags: threshold calibration, kept apart from the detectors."""

from __future__ import annotations

import numpy as np

__all__ = ["quantile_threshold"]


def quantile_threshold(train_scores: np.ndarray, quantile: float = 0.995) -> float:
    """The ``quantile`` of training scores: about ``1 - quantile`` of normal readings flag.

    >>> quantile_threshold(np.arange(1001.0), 0.99)
    990.0
    """
    if not 0.5 < quantile < 1.0:
        raise ValueError("quantile: must be in (0.5, 1)")
    scores = np.asarray(train_scores, dtype=np.float64)
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError("train_scores: need a non-empty finite array")
    return float(np.quantile(scores, quantile))
