"""The anomaly likelihood of a raw score stream (the idea of HTM/NAB's): how unusual the
recent scores are *for this stream*, as a surprise ``-log10 Q``.

A short moving average of the raw score is compared with the long history of that
average (EWMA mean, and a variance made robust by clipping); ``Q`` is the tail
probability of the standardised short average. Everything is carried as four numbers
(``short``, ``mean``, ``var1``, ``var2``), so a stream scored in parts gives the same
surprise as one scored whole.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.special import log_ndtr

from mmlw.detectors._online import LN10, before, ewma

__all__ = ["CHANNEL_PENALTY", "channel_history", "channel_surprise", "robust_start", "surprise_of"]


def surprise_of(
    raw: np.ndarray,
    state: Mapping[str, np.ndarray],
    *,
    short_rate: float,
    history_rate: float,
    clip: float,
    min_std: float,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Surprise ``-log10 Q(z)`` of each row's short average (``short_rate``) against its
    history (``history_rate``; 0: frozen), and the state after the rows.

    >>> state = {k: np.array(v) for k, v in
    ...          {"short": 1.0, "mean": 1.0, "var1": 0.01, "var2": 0.01}.items()}
    >>> usual, _ = surprise_of(np.ones(5), state, short_rate=0.5, history_rate=0.01,
    ...                        clip=3.0, min_std=0.01)
    >>> unusual, after = surprise_of(np.array([1.0, 3.0, 3.0]), state, short_rate=0.5,
    ...                              history_rate=0.01, clip=3.0, min_std=0.01)
    >>> bool(usual.max() < 1.0), bool(unusual[-1] > 5.0), sorted(after)
    (True, True, ['mean', 'short', 'var1', 'var2'])
    """
    short = ewma(raw, short_rate, np.asarray(state["short"]))
    mean = ewma(short, history_rate, np.asarray(state["mean"]))
    mean_before = before(mean, np.asarray(state["mean"]))
    dev2 = (short - mean_before) ** 2
    var1 = ewma(dev2, history_rate, np.asarray(state["var1"]))
    floor = min_std**2
    bound = clip**2 * np.maximum(before(var1, np.asarray(state["var1"])), floor)
    var2 = ewma(np.minimum(dev2, bound), history_rate, np.asarray(state["var2"]))
    std = np.sqrt(np.maximum(before(var2, np.asarray(state["var2"])), floor))
    z = (short - mean_before) / std
    surprise = -log_ndtr(-z) / LN10
    return surprise, {"short": short[-1], "mean": mean[-1], "var1": var1[-1], "var2": var2[-1]}


#: an extra channel's surprise counts ``CHANNEL_PENALTY * log10(m)`` less with ``m``
#: sensors: Bonferroni's ``log10(m)`` made stricter, as one sensor's transient lifts several
#: rows in a row (two days of a normal simulated machine raised an alert with 1 or 2, none
#: in 3 with 3)
CHANNEL_PENALTY = 3.0


def robust_start(values: np.ndarray, min_std: float) -> tuple[float, float]:
    """Where a history starts from training values: their median and robust variance
    (MAD-based, at least ``min_std`` squared).

    >>> tuple(round(v, 3) for v in robust_start(np.array([1.0, 2.0, 3.0, 100.0]), 0.05))
    (2.5, 2.198)
    """
    mean = float(np.median(values))
    spread = 1.4826 * float(np.median(np.abs(values - mean)))
    return mean, max(spread**2, min_std**2)


def channel_surprise(
    values: np.ndarray, history: Mapping[str, np.ndarray], sensors: int, **options: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """An extra channel's surprise of already short-averaged ``values`` against their
    ``history`` (``mean``, ``var1``, ``var2``), less the penalty for ``sensors`` chances,
    and the history after them (arrays). ``options``: :func:`surprise_of`'s
    ``history_rate``, ``clip`` and ``min_std``."""
    # the values are the short average already
    state = {**history, "short": history["mean"]}
    surprise, after = surprise_of(values, state, short_rate=1.0, **options)
    learned = {k: np.asarray(after[k], dtype=np.float64) for k in ("mean", "var1", "var2")}
    return surprise - CHANNEL_PENALTY * np.log10(sensors), learned


def channel_history(values: np.ndarray, sensors: int, **options: float) -> dict[str, np.ndarray]:
    """An extra channel's history learned from training ``values``: from their
    :func:`robust_start`, then as live values teach it (``options`` as
    :func:`channel_surprise`'s)."""
    mean, var = robust_start(values, options["min_std"])
    start = {"mean": np.array(mean), "var1": np.array(var), "var2": np.array(var)}
    return channel_surprise(values, start, sensors, **options)[1]
