"""Per-sensor level / change score that tolerates slow drift in persistent sensors.

Sensors differ in how they move. A noisy sensor (vibration, flow) wanders around a
stable level, so its **level** against the training part is what matters. A persistent
sensor (a temperature warming up) drifts slowly and keeps drifting after the training
part ends, so its level soon leaves the training range although nothing is wrong; for
it the **change** over the last ``change_lag`` rows is the informative quantity.

Which kind a sensor is comes from the training rows alone, by the ratio of the spread
of its first differences to its spread (von Neumann's ratio, ``std(diff x) / std(x)``):
about √2 ≈ 1.41 for white noise, near 0 for a slowly drifting signal. Sensors below
``slow_ratio`` are scored on change, the others on level.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mmlw.detectors._scale import scale_floor
from mmlw.detectors.base import BaseDetector, as_matrix
from mmlw.detectors.features import trailing_mean

__all__ = ["LevelChangeDetector", "persistence_ratio"]


def persistence_ratio(X: np.ndarray, eps: float = 1e-9) -> np.ndarray:
    """``std(diff x) / std(x)`` per column; √2 for a constant column (treated as noise).

    A column counts as constant when its std is below its scale floor (a millionth of its
    magnitude, at least ``eps``; see :func:`~mmlw.detectors._scale.scale_floor`).

    >>> rng = np.random.default_rng(0)
    >>> noise, walk = rng.normal(size=500), np.cumsum(rng.normal(size=500))
    >>> r = persistence_ratio(np.column_stack([noise, walk]))
    >>> bool(1.2 < r[0] < 1.6), bool(r[1] < 0.3)
    (True, True)
    """
    spread = X.std(axis=0)
    steps = np.diff(X, axis=0).std(axis=0) if len(X) > 1 else np.zeros(X.shape[1])
    ratio = np.full(X.shape[1], np.sqrt(2.0))
    moving = spread >= scale_floor(X.mean(axis=0), eps)
    ratio[moving] = steps[moving] / spread[moving]
    return ratio


class LevelChangeDetector(BaseDetector):
    """Largest per-sensor deviation, each in multiples of its own training reference.

    Per sensor: standardise with the training mean/std; take the trailing mean over
    ``window`` rows of either the level ``z`` (noisy sensors) or the change
    ``z(t) - z(t - change_lag)`` (persistent sensors, :func:`persistence_ratio` below
    ``slow_ratio``); divide its absolute value by the ``reference_quantile`` of the same
    quantity on the training rows. The score is the largest of these ratios, so ``2``
    means "twice as far out as the training part went (at its 99th percentile)".
    :meth:`explain` puts the whole score on the sensor that set it (rows sum exactly).
    A sensor whose training reference is 0 uses its largest training deviation instead,
    and one constant in training a reference of 1 (its z is in units of its scale floor).

    Windows and lags reach back :meth:`context_rows` rows: :meth:`stream` scores a part of
    a series behind that many rows of the part before it, so the split never matters.

    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(600)
    >>> warm = 20 + 0.01 * t + 0.01 * rng.normal(size=600)   # drifts, never anomalous
    >>> flow = 5 + rng.normal(size=600)
    >>> det = LevelChangeDetector().fit(np.column_stack([warm, flow])[:400])
    >>> det.slow_.tolist()
    [True, False]
    >>> later = np.column_stack([warm, flow])[400:]
    >>> bool(det.anomaly_score(later).max() < 2.5)      # the warm-up alone does not alarm
    True
    >>> later[100:150, 1] += 4                           # the flow leaves its level
    >>> scores = det.anomaly_score(later)
    >>> bool(scores[110:150].min() > 2.5), int(det.explain(later)[120].argmax())
    (True, 1)
    """

    rowwise: ClassVar[bool] = False  # trailing means span rows

    def __init__(
        self,
        window: int = 10,
        slow_ratio: float = 0.95,
        change_lag: int = 60,
        reference_quantile: float = 0.99,
        eps: float = 1e-9,
    ) -> None:
        self.window = window
        self.slow_ratio = slow_ratio
        self.change_lag = change_lag
        self.reference_quantile = reference_quantile
        self.eps = eps

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> LevelChangeDetector:
        if int(self.window) < 1 or int(self.change_lag) < 1:
            raise ValueError("window and change_lag must be >= 1")
        if not 0.5 <= float(self.reference_quantile) <= 1.0:
            raise ValueError("reference_quantile: must be in [0.5, 1]")
        X = as_matrix(X)
        if len(X) < 2:
            raise ValueError("X: need at least 2 rows to fit")
        self.slow_ = persistence_ratio(X, self.eps) < float(self.slow_ratio)
        self._fit_standardizer(X)
        deviations = self._deviations(X)
        reference = np.quantile(deviations, float(self.reference_quantile), axis=0)
        # A sensor that (almost) never deviated in training is measured against its
        # largest deviation; one constant in training against one scale floor (its z
        # unit), so its later move scores |z| rather than |z| / eps.
        reference = np.where(reference > self.eps, reference, deviations.max(axis=0))
        reference = np.where(self.constant_, 1.0, reference)
        self.reference_ = np.maximum(reference, self.eps)
        return self

    def context_rows(self) -> int:
        lag = int(self.change_lag) if self.slow_.any() else 0
        return int(self.window) - 1 + lag

    def _deviations(self, X: np.ndarray) -> np.ndarray:
        """Absolute trailing-mean level (noisy sensors) or change (persistent sensors)."""
        Z = (X - self.mean_) / self.scale_
        if self.slow_.any():
            lagged = Z[np.maximum(np.arange(len(Z)) - int(self.change_lag), 0)]
            Z = np.where(self.slow_, Z - lagged, Z)
        return np.abs(trailing_mean(Z, int(self.window)))

    def _ratios(self, X: object) -> np.ndarray:
        return self._deviations(self._check_input(X)) / self.reference_

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return self._ratios(X).max(axis=1)

    def explain(self, X: np.ndarray) -> np.ndarray:
        ratios = self._ratios(X)
        parts = np.zeros_like(ratios)
        rows = np.arange(len(ratios))
        top = ratios.argmax(axis=1)
        parts[rows, top] = ratios[rows, top]
        return parts
