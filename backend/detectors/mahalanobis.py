"""Robust Mahalanobis distance: Minimum Covariance Determinant on standardized sensors."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.covariance import MinCovDet

from backend.detectors.base import BaseDetector, as_matrix

__all__ = ["MahalanobisDetector"]


class MahalanobisDetector(BaseDetector):
    """Score = squared Mahalanobis distance ``dᵀ Σ⁻¹ d`` under a robust (MCD) covariance.

    Sensors are standardized with the training mean/std, then scikit-learn's
    :class:`~sklearn.covariance.MinCovDet` estimates a location and covariance that ignore
    up to ``1 - support_fraction`` of outlying rows. ``ridge`` is added to the covariance
    diagonal so collinear sensors stay invertible (MCD's rank warnings are silenced).
    :meth:`explain` is the complete decomposition ``d_j · (Σ⁻¹ d)_j`` (terms may be
    negative; rows sum exactly to the score).

    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(500, 1))
    >>> X = np.hstack([latent, 2 * latent, -latent]) + 0.05 * rng.normal(size=(500, 3))
    >>> det = MahalanobisDetector(random_state=0).fit(X)
    >>> normal, broken = det.score_samples(np.array([[1.0, 2.0, -1.0], [1.0, -2.0, -1.0]]))
    >>> bool(broken > 100 * normal)
    True
    """

    def __init__(
        self,
        support_fraction: float | None = None,
        ridge: float = 1e-6,
        random_state: int | None = 0,
        eps: float = 1e-9,
    ) -> None:
        self.support_fraction = support_fraction
        self.ridge = ridge
        self.random_state = random_state
        self.eps = eps

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> MahalanobisDetector:
        X = as_matrix(X)
        n, m = X.shape
        if n < m + 2:
            raise ValueError(f"X: need at least {m + 2} rows to fit {m} sensors")
        Z = self._fit_standardizer(X)
        mcd = MinCovDet(support_fraction=self.support_fraction, random_state=self.random_state)
        with warnings.catch_warnings():
            # Collinear sensors (e.g. lag features) make the raw covariance singular; the
            # ridge below keeps the precision finite, so MCD's rank warnings are expected.
            warnings.filterwarnings("ignore", "The covariance matrix associated", UserWarning)
            warnings.filterwarnings("ignore", "Determinant has increased", RuntimeWarning)
            mcd.fit(Z)
        self.location_ = mcd.location_
        self.covariance_ = mcd.covariance_ + float(self.ridge) * np.eye(m)
        self.precision_ = np.linalg.inv(self.covariance_)
        self.precision_ = (self.precision_ + self.precision_.T) / 2
        return self

    def explain(self, X: np.ndarray) -> np.ndarray:
        D = self._standardize(X) - self.location_
        return D * (D @ self.precision_)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        return self.explain(X).sum(axis=1)
