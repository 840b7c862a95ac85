"""The detector contract (docs/detectors-evaluation.md, "The detector contract").

A detector follows scikit-learn's estimator rules — ``__init__`` stores hyperparameters
only, ``fit(X)`` returns ``self``, learned state ends in ``_`` — and adds:

* ``anomaly_score(X)``: one score per row, **higher = more anomalous**;
* ``explain(X)``: per-sensor contributions, shape ``(n_rows, n_features)``, each row
  summing to that row's score;
* ``stream(X, carry)``: the contributions of rows ``X`` that *follow* the rows summarised
  by ``carry`` (``None`` at the start of a series), and the carry after them. Scoring a
  series in any split into consecutive parts gives the contributions of scoring it whole
  (to floating-point tolerance): trailing windows see the rows before the part, online
  learners learn from every row once, in order. A carry is named arrays only (stored as
  data, never as code). The default keeps the last :meth:`context_rows` rows.

Thresholds and flags are not a detector's job (see :mod:`mmlw.detectors.threshold`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Protocol, TypeAlias, runtime_checkable

import numpy as np
from sklearn.base import BaseEstimator

from mmlw.detectors._scale import floored_scale

__all__ = ["BaseDetector", "Carry", "Detector", "as_matrix"]

#: a detector's streaming state between parts of a series: named arrays only
Carry: TypeAlias = Mapping[str, np.ndarray]


@runtime_checkable
class Detector(Protocol):
    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> Detector: ...

    def anomaly_score(self, X: np.ndarray) -> np.ndarray: ...

    def explain(self, X: np.ndarray) -> np.ndarray: ...

    def stream(self, X: np.ndarray, carry: Carry | None) -> tuple[np.ndarray, Carry]: ...


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

    def context_rows(self) -> int:
        """How many rows before a row its score depends on (0: on that row alone)."""
        return 0

    def stream(self, X: np.ndarray, carry: Carry | None) -> tuple[np.ndarray, Carry]:
        """:meth:`explain` of rows ``X`` that follow the series ``carry`` summarises, and
        the carry after them (see the module docstring). This default keeps the last
        :meth:`context_rows` rows and scores ``X`` behind them."""
        X = self._check_input(X)
        history = None if carry is None else carry.get("history")
        window = X if history is None or not len(history) else np.vstack([history, X])
        keep = self.context_rows()
        contributions = self.explain(window)[len(window) - len(X) :]
        return contributions, ({"history": window[max(len(window) - keep, 0) :]} if keep else {})

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(X) first")

    def _fit_standardizer(self, X: np.ndarray) -> np.ndarray:
        """Learn per-sensor mean/scale; return X standardized (finite for any finite X).

        The scale is the sensor's std, floored at a millionth of its magnitude (and at
        ``eps``) by :func:`~mmlw.detectors._scale.floored_scale`, so a sensor constant
        in training standardizes to 0 there and a later move of it gives a large but
        finite z. Needs an ``eps`` hyperparameter; sets ``n_features_in_``, ``mean_``,
        ``scale_`` and ``constant_`` (sensors whose std is below that floor).
        """
        self.n_features_in_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        spread = X.std(axis=0)
        self.scale_ = floored_scale(spread, self.mean_, float(self.eps))
        self.constant_ = spread < self.scale_
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
