"""Local Outlier Factor (scikit-learn, novelty mode) on standardized sensors."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import LocalOutlierFactor

from backend.detectors._shares import squared_z_share
from backend.detectors.base import BaseDetector, as_matrix

__all__ = ["LOFDetector"]


class LOFDetector(BaseDetector):
    """Score = the local outlier factor of each row (~1 on normal data, larger = outlier).

    The neighbourhood is learned from the training rows (``novelty=True``), so scoring
    never refits. Deterministic: LOF has no randomness. :meth:`explain` splits the score
    over sensors in proportion to the squared standardized deviation from the training
    mean (rows sum exactly to the score).

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> det = LOFDetector(n_neighbors=20).fit(X)
    >>> normal, outlier = det.score_samples(np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]]))
    >>> bool(outlier > 2 * normal)
    True
    """

    def __init__(self, n_neighbors: int = 20, metric: str = "euclidean", eps: float = 1e-9) -> None:
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.eps = eps

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> LOFDetector:
        X = as_matrix(X)
        if X.shape[0] < 2:
            raise ValueError("X: need at least 2 rows to fit")
        Z = self._fit_standardizer(X)
        self.lof_ = LocalOutlierFactor(
            n_neighbors=min(int(self.n_neighbors), X.shape[0] - 1),
            metric=self.metric,
            novelty=True,
        ).fit(Z)
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        Z = self._standardize(X)
        return -self.lof_.score_samples(Z)

    def explain(self, X: np.ndarray) -> np.ndarray:
        Z = self._standardize(X)
        return squared_z_share(Z, -self.lof_.score_samples(Z))
