"""The roughness channel: one sensor's readings turning rough while the others stay smooth.

A failing sensor (a loose wire, a worn bearing) often shows as noise on its own readings.
Its steps ``x_t - x_(t-1)``, in units of the sensor's usual steps (robust spread of the
training rows' steps), grow; a change of operating point steps every sensor at once. Per
sensor, the squared step (capped) goes through a cube root (a chi-square made nearly
normal) and a short EWMA; per row, the largest of those averages minus their median over
the sensors is compared with its own history (EWMA mean and robust variance, as the
anomaly likelihood's) as a surprise, counted ``CHANNEL_PENALTY * log10(m)`` less for ``m``
sensors. It sees the raw readings, not the cross-sensor residual, in which the other
sensors' noise can hide a smooth sensor's (a thermal one) turning rough. With fewer than
three sensors there is no median to compare with, and no channel.

Everything is carried (the last reading, the averages and the history: :data:`KEYS`), so a
series scored in parts gives the same surprise as one scored whole.

>>> rng = np.random.default_rng(0)
>>> X = np.cumsum(rng.normal(size=(900, 4)), axis=0) * 0.1 + 0.01 * rng.normal(size=(900, 4))
>>> rough = Roughness.fit(X[:300])
>>> live = X[300:].copy(); live[300:360, 1] += 0.5 * rng.normal(size=60)  # one sensor
>>> surprise, blamed, _ = rough.surprise(live, rough.start)
>>> bool(surprise[:300].max() < 6.0), bool(np.median(surprise[305:360]) > 6.0)
(True, True)
>>> int(np.bincount(blamed[305:360]).argmax())  # the rough sensor is named
1
>>> a, _, carry = rough.surprise(live[:250], rough.start)
>>> b, _, _ = rough.surprise(live[250:], carry)
>>> bool(np.allclose(np.concatenate([a, b]), surprise))
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mmlw.detectors._online import ewma
from mmlw.detectors.likelihood import channel_history, channel_surprise

__all__ = ["KEYS", "Roughness"]

#: the channel's state in a carry
KEYS = ("r_prev", "r_short", "r_mean", "r_var1", "r_var2")
_CAP = 100.0


@dataclass(frozen=True)
class Roughness:
    """Per-sensor step spreads learned from training rows, the options of the averages and
    history, and the state a series starts from (:meth:`fit`)."""

    scale: np.ndarray
    start: dict[str, np.ndarray]
    end: dict[str, np.ndarray]
    rate: float = 0.3
    history_rate: float = 0.0005
    clip: float = 6.0
    min_std: float = 0.05

    @classmethod
    def fit(cls, X: np.ndarray, **options: float) -> Roughness:
        """From training rows ``X`` (at least three sensors and two rows)."""
        steps = np.diff(X, axis=0)
        centred = np.abs(steps - np.median(steps, axis=0))
        scale = np.maximum(1.4826 * np.median(centred, axis=0), 1e-9 + 1e-9 * np.abs(X[0]))
        blank = cls(scale, {}, {}, **options)
        stat, averages = blank._statistic(X, X[0], np.ones(X.shape[1]))
        history = channel_history(stat, X.shape[1], **blank._options)
        start = {f"r_{k}": v for k, v in history.items()}
        start["r_short"] = np.ones(X.shape[1])
        end = {**start, "r_prev": X[-1].copy(), "r_short": averages[-1]}
        return cls(scale, start, end, **options)

    @property
    def _options(self) -> dict[str, float]:
        return {"history_rate": self.history_rate, "clip": self.clip, "min_std": self.min_std}

    def _statistic(
        self, X: np.ndarray, previous: np.ndarray, short: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per row the largest sensor's average less the median one, and the averages."""
        steps = np.diff(X, axis=0, prepend=previous[None, :]) / self.scale
        averages = ewma(np.cbrt(np.minimum(steps * steps, _CAP)), self.rate, short)
        return averages.max(axis=1) - np.median(averages, axis=1), averages

    def surprise(
        self, X: np.ndarray, carry: Mapping[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """The channel's surprise of each row of raw readings ``X`` (less the penalty) from
        ``carry`` (its keys; a series' first row has no step), the roughest sensor of each
        row, and the channel's keys after the rows."""
        previous = np.asarray(carry.get("r_prev", X[0]), dtype=np.float64)
        stat, averages = self._statistic(X, previous, np.asarray(carry["r_short"]))
        history = {k: np.asarray(carry[f"r_{k}"]) for k in ("mean", "var1", "var2")}
        surprise, learned = channel_surprise(stat, history, X.shape[1], **self._options)
        after = {"r_prev": X[-1].copy(), "r_short": averages[-1]}
        after.update({f"r_{k}": v for k, v in learned.items()})
        return surprise, averages.argmax(axis=1), after
