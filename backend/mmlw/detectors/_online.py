"""Exponentially weighted moving averages over whole batches, exactly as row by row.

An EWMA ``y_t = rate·v_t + (1 - rate)·y_{t-1}`` is a first-order linear filter, so
:func:`scipy.signal.lfilter` computes it for a batch at once from ``y_{-1}``; a stage that
uses only the *previous* row's value of another stage (:func:`before`) keeps a recursion
exact however a series is split into batches.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

__all__ = ["LN10", "MEAN_ABS", "before", "catching_up", "ewma"]

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


def catching_up(
    values: np.ndarray, previous: np.ndarray, rate: float, weighs: int, full: int
) -> tuple[np.ndarray, np.ndarray]:
    """An EWMA (``rate``; 0: constant) whose start ``previous`` weighs only ``weighs`` rows:
    until it weighs ``full`` rows (``1 / rate``) it is a running mean, each new row weighing
    one; then the EWMA. The values after each row, and the rows the last one weighs. (The
    adaptive detector's slow level after an episode: it soon learns where a machine that
    moved on during a fault is now.)

    >>> out, weighs = catching_up(np.array([[2.0], [2.0], [2.0]]), np.array([0.0]), 0.25, 2, 4)
    >>> out.ravel().tolist(), float(weighs)
    ([0.6666666666666666, 1.0, 1.25], 4.0)
    """
    if rate == 0.0 or weighs >= full:
        return ewma(values, rate, previous), np.array(float(weighs))
    k = min(len(values), full - weighs)  # rows of the running mean
    out = np.empty_like(values)
    count = (weighs + np.arange(1, k + 1))[:, None]
    out[:k] = (np.asarray(previous) * weighs + np.cumsum(values[:k], axis=0)) / count
    if k < len(values):
        out[k:] = ewma(values[k:], rate, out[k - 1])
    return out, np.array(float(min(full, weighs + len(values))))
