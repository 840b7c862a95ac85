"""The worst sensor's channel of the anomaly likelihood.

The raw score averages the sensors' terms, so a fault on one sensor of eight moves it by
an eighth of that sensor's term: a noise fault that makes one sensor's squared residuals
ten times larger is lost in the mean of the others. This channel keeps a short moving
average of the cube root of each sensor's (capped) term (the cube root makes a chi-square
nearly normal, and keeps one huge reading from lifting the average for many rows), takes
the largest one per row, and compares it with its own history (EWMA mean and robust
variance, as the main channel does), so its surprise says how unusual the worst sensor
is *for this stream*. With ``m`` sensors there are ``m`` chances to be surprised, so the
channel's surprise counts ``CHANNEL_PENALTY * log10(m)`` less
(:mod:`~mmlw.detectors.likelihood`). A detector reports the larger of the two surprises.

The carry holds the per-sensor averages (``tshort``) and the history (:data:`KEYS`); a
series scored in parts gives the same surprise as one scored whole.

>>> rng = np.random.default_rng(0)
>>> terms = rng.chisquare(1, size=(600, 4)) / 4  # four sensors' terms (divided by m)
>>> options = dict(cap=100.0, rate=0.3, history_rate=0.0005, clip=6.0, min_std=0.05)
>>> start = fit_state(terms[:300], **options)
>>> sorted(start)
['p_mean', 'p_var1', 'p_var2', 'tshort']
>>> live = terms[300:].copy(); live[150:210, 2] *= 25  # one sensor's residuals 5x
>>> surprise, after = surprise_of_worst(live, start, **options)
>>> bool(surprise[:150].max() < 6.0), bool(np.median(surprise[155:210]) > 6.0)
(True, True)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mmlw.detectors._online import ewma
from mmlw.detectors.likelihood import channel_history, channel_surprise

__all__ = ["KEYS", "fit_state", "surprise_of_worst"]

#: the channel's score history in a carry
KEYS = ("p_mean", "p_var1", "p_var2")


def _worst(
    terms: np.ndarray, cap: float, rate: float, previous: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the largest of the sensors' short averages of the cube roots of their
    capped terms (given divided by the number of sensors, as the raw score sums them);
    the averages after."""
    m = terms.shape[1]
    short = ewma(np.cbrt(np.minimum(terms * m, cap)), rate, previous)
    return short.max(axis=1), short[-1]


def surprise_of_worst(
    terms: np.ndarray, state: Mapping[str, np.ndarray], *, cap: float, rate: float, **options: float
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The channel's surprise of each row (less the penalty for the sensors), and its state
    after the rows (``options``: the history's, as
    :func:`~mmlw.detectors.likelihood.channel_surprise` takes them; frozen with
    ``history_rate`` 0)."""
    worst, tshort = _worst(terms, cap, rate, np.asarray(state["tshort"]))
    history = {k[2:]: np.asarray(state[k]) for k in KEYS}
    surprise, learned = channel_surprise(worst, history, terms.shape[1], **options)
    return surprise, {"tshort": tshort, **{f"p_{k}": v for k, v in learned.items()}}


def fit_state(
    terms: np.ndarray, *, cap: float, rate: float, **options: float
) -> dict[str, np.ndarray]:
    """Where a series starts: per-sensor averages at 1 (the usual squared residual) and the
    history of the training rows' terms."""
    start = np.ones(terms.shape[1])
    worst, _ = _worst(terms, cap, rate, start)
    history = channel_history(worst, terms.shape[1], **options)
    return {"tshort": start, **{f"p_{k}": v for k, v in history.items()}}
