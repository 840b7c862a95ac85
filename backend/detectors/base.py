"""The detector contract (DESIGN §4).

A detector follows scikit-learn's estimator rules — ``__init__`` stores hyperparameters
only, ``fit(X)`` returns ``self``, learned state ends in ``_`` — and adds:

* ``score_samples(X)``: one score per row, **higher = more anomalous**;
* ``explain(X)``: per-sensor contributions, shape ``(n_rows, n_features)``, each row
  summing to that row's score.

Thresholds and flags are not a detector's job (see :mod:`backend.detectors.threshold`).
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
from sklearn.base import BaseEstimator

__all__ = ["BaseDetector", "Detector", "as_matrix"]


@runtime_checkable
class Detector(Protocol):
    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> Detector: ...

    def score_samples(self, X: np.ndarray) -> np.ndarray: ...

    def explain(self, X: np.ndarray) -> np.ndarray: ...


def as_matrix(X: object) -> np.ndarray:
    """A finite 2-D float64 array, or ValueError saying what is wrong."""
    array = np.asarray(X, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"X: expected a 2-D array, got {array.ndim} dimensions")
    if not np.isfinite(array).all():
        raise ValueError("X: contains NaN or infinite values")
    return array


class BaseDetector(BaseEstimator):
    """Shared plumbing: input checks and the fitted-state guard."""

    #: each row's score depends on that row alone, so the rows of several batches may be
    #: scored in one call; detectors over trailing windows of rows set False
    rowwise: ClassVar[bool] = True

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(X) first")

    def _fit_standardizer(self, X: np.ndarray) -> np.ndarray:
        """Learn per-sensor mean/scale (near-constant sensors get scale 1); return X standardized.

        Needs an ``eps`` hyperparameter; sets ``n_features_in_``, ``mean_`` and ``scale_``.
        """
        self.n_features_in_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0)
        self.scale_[self.scale_ < self.eps] = 1.0
        return (X - self.mean_) / self.scale_

    def _standardize(self, X: object) -> np.ndarray:
        """Checked input, standardized with what :meth:`_fit_standardizer` learned."""
        return (self._check_input(X) - self.mean_) / self.scale_

    def _check_input(self, X: object) -> np.ndarray:
        self._check_fitted()
        array = as_matrix(X)
        if array.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X: {array.shape[1]} features, the detector was fitted on {self.n_features_in_}"
            )
        return array
