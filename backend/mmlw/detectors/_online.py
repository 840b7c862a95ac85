"""Exponentially weighted moving averages over whole batches, exactly as row by row.

An EWMA ``y_t = rate·v_t + (1 - rate)·y_{t-1}`` is a first-order linear filter, so
:func:`scipy.signal.lfilter` computes it for a batch at once from ``y_{-1}``; a stage that
uses only the *previous* row's value of another stage (:func:`before`) keeps a recursion
exact however a series is split into batches.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

__all__ = ["LN10", "MEAN_ABS", "before", "ewma"]

#: E|r| = MEAN_ABS * std for Gaussian r
MEAN_ABS = float(np.sqrt(2.0 / np.pi))
LN10 = float(np.log(10.0))


def ewma(values: np.ndarray, rate: float, previous: np.ndarray) -> np.ndarray:
    """EWMA of ``values`` along axis 0 from ``y_{-1} = previous`` (``rate`` 0: constant).

    >>> ewma(np.array([1.0, 1.0, 1.0]), 0.5, np.array(0.0)).tolist()
    [0.5, 0.75, 0.875]
    """
    zi = ((1.0 - rate) * np.asarray(previous, dtype=np.float64))[None, ...]
    out, _ = lfilter([rate], [1.0, rate - 1.0], values, axis=0, zi=zi)
    return np.asarray(out)


def before(values: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Each row's predecessor: ``previous`` then ``values[:-1]``.

    >>> before(np.array([1.0, 2.0, 3.0]), np.array(0.0)).tolist()
    [0.0, 1.0, 2.0]
    """
    return np.concatenate([np.asarray(previous, dtype=np.float64)[None, ...], values[:-1]])
