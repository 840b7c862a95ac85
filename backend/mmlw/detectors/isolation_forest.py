"""Isolation Forest on standardized sensors (scikit-learn), higher = more anomalous."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from mmlw.detectors._flat_forest import FlatForest
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

    def _flat(self) -> FlatForest:
        """The forest as flat arrays (:mod:`._flat_forest`), built on first use and never
        pickled: a registered model stays scikit-learn's forest, and models registered
        before this existed score the same way."""
        flat: FlatForest | None = self.__dict__.get("_flat_forest")
        if flat is None:
            flat = self.__dict__["_flat_forest"] = FlatForest.of(self.forest_)
        return flat

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_flat_forest", None)
        return state

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        Z = self._standardize(X)  # checks that it is fitted, and the input
        return self._flat().scores(Z)

    def explain(self, X: np.ndarray) -> np.ndarray:
        Z = self._standardize(X)
        return squared_z_share(Z, self._flat().scores(Z))
