"""Robust Mahalanobis distance: Minimum Covariance Determinant on standardized sensors."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import eigh
from sklearn.covariance import MinCovDet, ledoit_wolf

from mmlw.detectors.base import BaseDetector, as_matrix

__all__ = ["MahalanobisDetector"]

#: the MCD support counts as collapsed when the training rows spread this many times more
#: than it along some direction (healthy fits, even on contaminated data, stay far below;
#: a support with no variance in a direction gives ~1/ridge)
_COLLAPSED = 1e4


class MahalanobisDetector(BaseDetector):
    """Score = squared Mahalanobis distance ``dᵀ Σ⁻¹ d`` under a robust (MCD) covariance.

    Sensors are standardized with the training mean/std, then scikit-learn's
    :class:`~sklearn.covariance.MinCovDet` estimates a location and covariance that ignore
    up to ``1 - support_fraction`` of outlying rows. ``ridge`` is added to the covariance
    diagonal so collinear sensors stay invertible (MCD's rank warnings are silenced).
    :meth:`explain` is the complete decomposition ``d_j · (Σ⁻¹ d)_j`` (terms may be
    negative; rows sum exactly to the score).

    Degenerate training data never makes :meth:`fit` raise (it needs 2 rows):

    * sensors constant in training (see :meth:`_fit_standardizer`) are left out of the
      covariance and scored as independent with unit variance, i.e. ``z²`` in multiples
      of their scale floor;
    * when MCD fails (too few rows, or its support has zero covariance, e.g. mostly
      repeated rows) or its support is singular in a direction along which the training
      rows do spread (quantised sensors), the location is the mean and the covariance
      the Ledoit-Wolf shrunk empirical covariance (plus ``ridge``); ``robust_`` says
      which estimate was used.

    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(500, 1))
    >>> X = np.hstack([latent, 2 * latent, -latent]) + 0.05 * rng.normal(size=(500, 3))
    >>> det = MahalanobisDetector(random_state=0).fit(X)
    >>> normal, broken = det.anomaly_score(np.array([[1.0, 2.0, -1.0], [1.0, -2.0, -1.0]]))
    >>> bool(broken > 100 * normal)
    True
    >>> idle = np.tile([[1.0, 2.0, 3.0]], (50, 1))  # MCD alone: "covariance ... equal to 0"
    >>> det = MahalanobisDetector().fit(np.vstack([idle, X[:10]]))
    >>> det.robust_, bool(np.isfinite(det.anomaly_score(X)).all())
    (False, True)
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
        if n < 2:
            raise ValueError("X: need at least 2 rows to fit")
        Z = self._fit_standardizer(X)
        moving = np.flatnonzero(~self.constant_)
        self.location_ = np.zeros(m)
        self.covariance_ = np.eye(m)
        self.robust_ = False
        if len(moving):
            # (no copy when every sensor moves: MCD on collinear sensors is sensitive to
            # the last bit, and the estimate must not depend on how Z is laid out)
            location, covariance, self.robust_ = self._estimate(
                Z if len(moving) == m else Z[:, moving]
            )
            self.location_[moving] = location
            self.covariance_[np.ix_(moving, moving)] = covariance
        self.precision_ = np.linalg.inv(self.covariance_)
        self.precision_ = (self.precision_ + self.precision_.T) / 2
        return self

    def _estimate(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Location, ridged covariance and whether they are MCD's, for sensors that move.

        MCD's estimate is kept unless it fails or its support collapsed: some direction
        along which the training rows spread has (almost) no variance in the support, so
        that ordinary training rows would score ~1/ridge times their true distance.
        """
        n, m = Z.shape
        ridge = float(self.ridge) * np.eye(m)
        if n >= m + 2:
            mcd = MinCovDet(support_fraction=self.support_fraction, random_state=self.random_state)
            try:
                with warnings.catch_warnings():
                    # Collinear sensors (e.g. lag features) make the raw covariance
                    # singular; the ridge keeps the precision finite, so MCD's rank
                    # warnings are expected.
                    warnings.filterwarnings(
                        "ignore", "The covariance matrix associated", UserWarning
                    )
                    warnings.filterwarnings("ignore", "Determinant has increased", RuntimeWarning)
                    mcd.fit(Z)
            except ValueError:  # "The covariance matrix of the support data is equal to 0"
                pass
            else:
                covariance = mcd.covariance_ + ridge
                spread = np.cov(Z, rowvar=False, bias=True).reshape(m, m) + ridge
                if eigh(spread, covariance, eigvals_only=True).max() < _COLLAPSED:
                    return mcd.location_, covariance, True
        shrunk, _ = ledoit_wolf(Z)
        return Z.mean(axis=0), shrunk + ridge, False

    def explain(self, X: np.ndarray) -> np.ndarray:
        D = self._standardize(X) - self.location_
        return D * (D @ self.precision_)

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return self.explain(X).sum(axis=1)
