"""Temporal features as part of the detector, so training and serving compute them alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, clone

from mmlw.detectors._scale import scale_floor
from mmlw.detectors.base import BaseDetector, as_matrix
from mmlw.detectors.pca import PCADetector

__all__ = ["TemporalFeatures", "temporal_features", "trailing_mean"]

#: absolute floor below which a sensor at level ~0 counts as constant (as detectors' eps)
_EPS = 1e-9


def trailing_mean(Z: np.ndarray, window: int) -> np.ndarray:
    """Mean of each column over the trailing ``window`` rows (shorter at the start).

    Each mean is summed over its own window only (no running sum), so a row's value does
    not depend on how many rows came before its window: streamed parts agree exactly.

    >>> trailing_mean(np.array([[1.0], [3.0], [5.0]]), 2).ravel().tolist()
    [1.0, 2.0, 4.0]
    """
    n, m = Z.shape
    window = max(int(window), 1)
    padded = np.vstack([np.zeros((window - 1, m)), Z])
    sums = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0).sum(axis=2)
    counts = np.minimum(np.arange(1, n + 1), window)
    return np.asarray(sums / counts[:, None])


def temporal_features(
    X: np.ndarray, lags: Sequence[int], windows: Sequence[int], diffs: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Expand rows (in time order) with lags, rolling mean/std and first differences.

    Returns the expanded matrix (raw sensors first) and, per column, the index of the
    sensor it came from. No NaN: the first rows use whatever history the batch has
    (a lag before the first row repeats the first row, windows shrink, the first
    difference is 0).

    >>> E, source = temporal_features(np.array([[1.0], [2.0], [4.0]]), (1,), (2,), True)
    >>> E.tolist()
    [[1.0, 1.0, 1.0, 0.0, 0.0], [2.0, 1.0, 1.5, 0.5, 1.0], [4.0, 2.0, 3.0, 1.0, 2.0]]
    >>> source.tolist()
    [0, 0, 0, 0, 0]
    """
    n, m = X.shape
    blocks = [X]
    index = np.arange(n)
    for lag in lags:
        blocks.append(X[np.maximum(index - int(lag), 0)])
    for window in windows:
        mean = trailing_mean(X, int(window))
        square = trailing_mean(X**2, int(window))
        blocks += [mean, np.sqrt(np.maximum(square - mean**2, 0.0))]
    if diffs:
        blocks.append(np.diff(X, axis=0, prepend=X[:1]))
    return np.hstack(blocks), np.tile(np.arange(m), len(blocks))


class TemporalFeatures(BaseDetector):
    """Fit ``base`` (default :class:`PCADetector`) on temporally expanded sensors.

    ``base`` is ``None``, a detector instance (cloned at fit), or a registered detector
    name built with its defaults.

    ``anomaly_score`` is the base detector's score on the expanded rows; :meth:`explain`
    sums the base detector's per-feature contributions back onto the sensor each feature
    came from, so it has shape ``(n_rows, n_sensors)`` and rows sum exactly to the score.
    Lags and windows reach back :meth:`context_rows` rows, which :meth:`stream` keeps
    from one part of a series to the next (so the split never matters); the very first
    rows of a series see less history. A sensor constant in training contributes only
    its raw column (its lags, means, rolling std and differences carry nothing more).

    >>> rng = np.random.default_rng(0)
    >>> t = np.arange(600) / 10
    >>> X = np.column_stack([np.sin(t), np.cos(t)]) + 0.01 * rng.normal(size=(600, 2))
    >>> det = TemporalFeatures(lags=(1,), windows=(5,)).fit(X)
    >>> jumpy = X[:50].copy()
    >>> jumpy[25, 0] += 0.5
    >>> scores = det.anomaly_score(jumpy)
    >>> int(scores.argmax()) in (25, 26), det.explain(jumpy).shape
    (True, (50, 2))
    """

    rowwise: ClassVar[bool] = False  # lags and rolling windows span rows

    def __init__(
        self,
        base: BaseEstimator | str | None = None,
        lags: Sequence[int] = (1,),
        windows: Sequence[int] = (5,),
        diffs: bool = True,
    ) -> None:
        self.base = base
        self.lags = lags
        self.windows = windows
        self.diffs = diffs

    def _expand(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return temporal_features(X, self.lags, self.windows, bool(self.diffs))

    def _base(self) -> BaseEstimator:
        """A fresh, unfitted copy of the base detector (a registered name is built)."""
        if self.base is None:
            return PCADetector()
        if isinstance(self.base, str):
            from mmlw.detectors.catalog import build_detector

            if self.base == "pca_temporal":
                raise ValueError("base: 'pca_temporal' cannot wrap itself")
            return build_detector(self.base)
        if not all(hasattr(self.base, a) for a in ("fit", "anomaly_score", "explain")):
            raise ValueError(f"base: {self.base!r} is not a detector or a registered name")
        return clone(self.base)

    def context_rows(self) -> int:
        reach = [int(lag) for lag in self.lags] + [int(w) - 1 for w in self.windows]
        return max([*reach, 1 if self.diffs else 0]) + int(self.base_.context_rows())

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> TemporalFeatures:
        X = as_matrix(X)
        if any(int(lag) < 1 for lag in self.lags) or any(int(w) < 2 for w in self.windows):
            raise ValueError("lags must be >= 1 and windows >= 2")
        expanded, source = self._expand(X)
        # A sensor constant in training makes its lags/means copies of it and its rolling
        # std and differences exactly 0 — columns with no magnitude, whose scale floor in
        # the base detector would be its absolute eps, so a later move would score ~1/eps².
        # Such a sensor keeps only its raw column, which sees the move on its own scale.
        constant = X.std(axis=0) < scale_floor(X.mean(axis=0), _EPS)
        raw = np.arange(len(source)) < X.shape[1]
        keep = raw | ~constant[source]
        self.columns_ = None if keep.all() else np.flatnonzero(keep)
        self.base_ = self._base().fit(self._select(expanded))
        self.n_features_in_ = X.shape[1]
        source = source[keep]
        self.folding_ = (source[:, None] == np.arange(X.shape[1])[None, :]).astype(np.float64)
        return self

    def _select(self, expanded: np.ndarray) -> np.ndarray:
        """The columns of ``expanded`` the base detector sees (all of them, uncopied, when
        ``columns_`` is None — also for detectors pickled before ``columns_`` existed)."""
        columns = getattr(self, "columns_", None)
        return expanded if columns is None else expanded[:, columns]

    def _features(self, X: object) -> np.ndarray:
        """The expanded columns the base detector was fitted on, for checked rows ``X``."""
        expanded, _ = self._expand(self._check_input(X))
        return self._select(expanded)

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        features = self._features(X)  # checks fitted and input first
        return np.asarray(self.base_.anomaly_score(features))

    def explain(self, X: np.ndarray) -> np.ndarray:
        features = self._features(X)
        return np.asarray(self.base_.explain(features) @ self.folding_)
