"""Robust z-score per sensor: median / MAD from training, no cross-sensor model."""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from mmlw.detectors._scale import scale_floor
from mmlw.detectors.base import BaseDetector, Carry, as_matrix

__all__ = ["RobustZScoreDetector"]

_MAD_TO_STD = 1.4826
_AGGREGATES = ("sum", "max")


class RobustZScoreDetector(BaseDetector):
    """Per-sensor ``z = (x - median) / (1.4826 · MAD)``; score aggregates ``z²`` over sensors.

    ``aggregate="sum"`` (mean of z² when ``normalize``) or ``"max"`` (largest z²).
    A sensor whose MAD is ~0 falls back to its std, then to a millionth of its magnitude
    (:func:`~mmlw.detectors._scale.scale_floor`), so z is always finite: a sensor
    constant in training that moves later scores large, in units of that floor.
    ``smoothing`` in (0, 1] applies an EWMA to z over the rows in time order (1.0 = no
    smoothing): :meth:`explain` starts it at the first row of the call, :meth:`stream`
    carries it from one part of a series to the next. :meth:`explain` returns the
    per-sensor terms (for ``"max"``, the whole score on the arg-max sensor); rows sum
    exactly to the score.

    >>> rng = np.random.default_rng(0)
    >>> det = RobustZScoreDetector().fit(rng.normal(size=(400, 3)))
    >>> parts = det.explain(np.array([[0.0, 5.0, 0.0]]))
    >>> int(parts.argmax()), bool(det.anomaly_score(np.array([[0.0, 5.0, 0.0]]))[0] > 5)
    (1, True)
    """

    def __init__(
        self,
        aggregate: str = "sum",
        normalize: bool = True,
        smoothing: float = 1.0,
        eps: float = 1e-9,
    ) -> None:
        self.aggregate = aggregate
        self.normalize = normalize
        self.smoothing = smoothing
        self.eps = eps

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> RobustZScoreDetector:
        if self.aggregate not in _AGGREGATES:
            raise ValueError(f"aggregate: {self.aggregate!r} not in {list(_AGGREGATES)}")
        if not 0 < float(self.smoothing) <= 1:
            raise ValueError(f"smoothing: {self.smoothing!r} not in (0, 1]")
        X = as_matrix(X)
        self.n_features_in_ = X.shape[1]
        self.median_ = np.median(X, axis=0)
        floor = scale_floor(self.median_, float(self.eps))
        scale = _MAD_TO_STD * np.median(np.abs(X - self.median_), axis=0)
        scale = np.where(scale < floor, X.std(axis=0), scale)
        self.scale_ = np.maximum(scale, floor)
        return self

    def _z(self, X: np.ndarray, last: np.ndarray | None = None) -> np.ndarray:
        """Smoothed z of rows ``X``; ``last`` is the smoothed z of the row before them."""
        Z = (self._check_input(X) - self.median_) / self.scale_
        alpha = float(self.smoothing)
        if alpha >= 1.0 or not len(Z):
            return Z
        # EWMA s_t = alpha z_t + (1 - alpha) s_{t-1}, s_0 = z_0, as one linear filter.
        initial = (1 - alpha) * (Z[:1] if last is None else last[None, :])
        smoothed, _ = lfilter([alpha], [1.0, alpha - 1.0], Z, axis=0, zi=initial)
        return np.asarray(smoothed)

    def stream(self, X: np.ndarray, carry: Carry | None) -> tuple[np.ndarray, Carry]:
        if float(self.smoothing) >= 1.0:
            return self.explain(X), {}
        Z = self._z(X, None if not carry else carry.get("ewma"))
        after: Carry = {"ewma": Z[-1]} if len(Z) else dict(carry or {})
        return self._terms(Z), after

    def explain(self, X: np.ndarray) -> np.ndarray:
        return self._terms(self._z(X))

    def _terms(self, Z: np.ndarray) -> np.ndarray:
        terms = Z**2
        if self.aggregate == "max":
            out = np.zeros_like(terms)
            rows = np.arange(len(terms))
            top = terms.argmax(axis=1)
            out[rows, top] = terms[rows, top]
            return out
        return terms / terms.shape[1] if self.normalize else terms

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return self.explain(X).sum(axis=1)
