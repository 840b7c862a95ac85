"""Local Outlier Factor (scikit-learn, novelty mode) on standardized sensors."""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import LocalOutlierFactor

from mmlw.detectors._shares import squared_z_share
from mmlw.detectors.base import BaseDetector, as_matrix

__all__ = ["LOFDetector"]


class LOFDetector(BaseDetector):
    """Score = the local outlier factor of each row (~1 on normal data, larger = outlier).

    The neighbourhood is learned from the training rows (``novelty=True``), so scoring
    never refits. Deterministic: LOF has no randomness. :meth:`explain` splits the score
    over sensors in proportion to the squared standardized deviation from the training
    mean (rows sum exactly to the score).

    Repeated training rows count once (``n_neighbors`` is capped at the number of
    distinct rows - 1), so an idle machine's repeated readings do not make every nearby
    row an outlier; if the training rows are all the same, the score is 1 + the Euclidean
    distance (in standardized units) to that row.

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 3))
    >>> det = LOFDetector(n_neighbors=20).fit(X)
    >>> normal, outlier = det.anomaly_score(np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]]))
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
        # Repeated rows have a k-distance of 0, so their density is infinite and any row
        # near them scores ~1e10: learn the neighbourhood from distinct rows (in order;
        # rows without repeats are used exactly as given).
        _, first = np.unique(Z, axis=0, return_index=True)
        distinct = Z[np.sort(first)]
        if len(distinct) < 2:
            self.lof_ = None
            self.center_ = distinct[0]
            return self
        self.lof_ = LocalOutlierFactor(
            n_neighbors=min(int(self.n_neighbors), len(distinct) - 1),
            metric=self.metric,
            novelty=True,
        ).fit(distinct)
        return self

    def _scores(self, Z: np.ndarray) -> np.ndarray:
        if self.lof_ is None:  # one distinct training row: 1 + distance to it
            return 1.0 + np.sqrt(((Z - self.center_) ** 2).sum(axis=1))
        return np.asarray(-self.lof_.score_samples(Z))

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return self._scores(self._standardize(X))

    def explain(self, X: np.ndarray) -> np.ndarray:
        Z = self._standardize(X)
        return squared_z_share(Z, self._scores(Z))
