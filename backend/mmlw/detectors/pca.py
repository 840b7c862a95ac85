"""PCA detector: Hotelling's T² in the principal subspace plus SPE (Q) in the residual."""

from __future__ import annotations

import numpy as np

from mmlw.detectors.base import BaseDetector, as_matrix

__all__ = ["PCADetector"]


def _rank(singular: np.ndarray, shape: tuple[int, ...]) -> int:
    """Numerical rank of a matrix from its singular values (numpy's matrix_rank rule)."""
    if not len(singular) or singular[0] <= 0:
        return 0
    return int(np.sum(singular > singular[0] * max(shape) * np.finfo(np.float64).eps))


class PCADetector(BaseDetector):
    """Score = T²/k + SPE/mean(SPE_train), on standardized sensors.

    ``n_components`` is an int, or a float in (0, 1) = the share of variance to keep.
    Each term is normalised to ~1 on normal data, so a score of 10 means "ten times the
    usual deviation". :meth:`explain` splits the score into per-sensor parts: exact
    residual² shares for SPE and the complete decomposition for T² (sums are exact).

    Degenerate training data: no more components are kept than the rows' numerical rank
    (none if every sensor is constant, so a sensor constant in training only ever shows
    in SPE), and if the training rows leave no residual at all (a single sensor, or all
    constant) SPE is not normalised (``spe_scale_ = 1``) instead of divided by ``eps``.

    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(500, 1))
    >>> X = np.hstack([latent, 2 * latent, -latent]) + 0.05 * rng.normal(size=(500, 3))
    >>> det = PCADetector(n_components=1).fit(X)
    >>> normal, broken = det.anomaly_score(np.array([[1.0, 2.0, -1.0], [1.0, -2.0, -1.0]]))
    >>> bool(broken > 100 * normal)
    True
    """

    def __init__(self, n_components: float | int = 0.95, eps: float = 1e-9) -> None:
        self.n_components = n_components
        self.eps = eps

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> PCADetector:
        X = as_matrix(X)
        n = X.shape[0]
        if n < 3:
            raise ValueError("X: need at least 3 rows to fit")
        Z = self._fit_standardizer(X)
        _, singular, vt = np.linalg.svd(Z, full_matrices=False)
        variance = singular**2 / max(n - 1, 1)
        k = self._components(variance, _rank(singular, Z.shape))
        self.components_ = vt[:k].T
        self.explained_variance_ = np.maximum(variance[:k], self.eps)
        self.n_components_ = k
        residual = Z - (Z @ self.components_) @ self.components_.T
        spe = float(np.mean(np.sum(residual**2, axis=1)))
        # No residual at all in training (one sensor, or every sensor constant): SPE is
        # then counted in plain z² units rather than blown up by 1/eps.
        self.spe_scale_ = spe if spe > self.eps else 1.0
        return self

    def _components(self, variance: np.ndarray, rank: int) -> int:
        """Components to keep: at most the numerical rank of the training rows (0 when
        every sensor is constant) and at most ``m - 1`` (so SPE exists when m > 1)."""
        m = len(variance)
        if isinstance(self.n_components, float) and 0 < self.n_components < 1:
            share = np.cumsum(variance) / max(variance.sum(), self.eps)
            k = int(np.searchsorted(share, self.n_components) + 1)
        else:
            k = int(self.n_components)
        return min(max(1, min(k, m - 1 if m > 1 else 1)), rank)

    def _parts(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Z = self._standardize(X)
        t = Z @ self.components_
        residual = Z - t @ self.components_.T
        spe_parts = residual**2 / self.spe_scale_
        t2_weights = (t / self.explained_variance_) @ self.components_.T
        t2_parts = Z * t2_weights / max(self.n_components_, 1)
        return t2_parts, spe_parts

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        t2_parts, spe_parts = self._parts(X)
        return t2_parts.sum(axis=1) + spe_parts.sum(axis=1)

    def explain(self, X: np.ndarray) -> np.ndarray:
        t2_parts, spe_parts = self._parts(X)
        return t2_parts + spe_parts
