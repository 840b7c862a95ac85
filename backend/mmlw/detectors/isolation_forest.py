"""Isolation Forest on standardized sensors (scikit-learn), higher = more anomalous."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from mmlw.detectors._shares import squared_z_share
from mmlw.detectors.base import BaseDetector, as_matrix

__all__ = ["IsolationForestDetector"]


class IsolationForestDetector(BaseDetector):
    """scikit-learn's IsolationForest with its score negated and shifted to be >= 0-ish.

    :meth:`explain` attributes each score to sensors in proportion to their squared
    standardized deviation from the training mean — cheap, and it names the sensor that
    moved. (Tree-path attributions come with the detector library.)

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> det = IsolationForestDetector(n_estimators=50, random_state=0).fit(X)
    >>> normal, outlier = det.anomaly_score(np.array([[0.0, 0.0, 0.0], [8.0, 0.0, 0.0]]))
    >>> bool(outlier > normal)
    True
    """

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int | float | str = "auto",
        random_state: int | None = 0,
        eps: float = 1e-9,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state
        self.eps = eps

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> IsolationForestDetector:
        X = as_matrix(X)
        Z = self._fit_standardizer(X)
        self.forest_ = IsolationForest(
            n_estimators=int(self.n_estimators),
            max_samples=self.max_samples,
            random_state=self.random_state,
        ).fit(Z)
        return self

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        Z = self._standardize(X)
        return -self.forest_.score_samples(Z)

    def explain(self, X: np.ndarray) -> np.ndarray:
        Z = self._standardize(X)
        return squared_z_share(Z, -self.forest_.score_samples(Z))
