"""Autoencoder: a scikit-learn MLP that reproduces standardized sensors through a bottleneck."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPRegressor

from mmlw.detectors.base import BaseDetector, as_matrix

__all__ = ["AutoencoderDetector"]


class AutoencoderDetector(BaseDetector):
    """Score = mean over sensors of the squared standardized reconstruction error.

    The network is ``m -> hidden -> bottleneck -> hidden -> m`` (``bottleneck`` is capped
    at ``m - 1`` so it cannot learn the identity). Training stops after ``max_iter`` epochs
    without a convergence warning; given ``random_state`` the fit is deterministic.
    :meth:`explain` returns each sensor's squared error / m (rows sum exactly to the score).

    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(500, 1))
    >>> X = np.hstack([latent, 2 * latent, -latent]) + 0.05 * rng.normal(size=(500, 3))
    >>> det = AutoencoderDetector(bottleneck=1, random_state=0).fit(X)
    >>> normal, broken = det.anomaly_score(np.array([[1.0, 2.0, -1.0], [1.0, -2.0, -1.0]]))
    >>> bool(broken > 10 * normal)
    True
    """

    def __init__(
        self,
        hidden: int = 16,
        bottleneck: int = 2,
        activation: str = "tanh",
        alpha: float = 1e-4,
        learning_rate_init: float = 0.01,
        max_iter: int = 200,
        random_state: int | None = 0,
        eps: float = 1e-9,
    ) -> None:
        self.hidden = hidden
        self.bottleneck = bottleneck
        self.activation = activation
        self.alpha = alpha
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.random_state = random_state
        self.eps = eps

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> AutoencoderDetector:
        X = as_matrix(X)
        n, m = X.shape
        if n < 3:
            raise ValueError("X: need at least 3 rows to fit")
        Z = self._fit_standardizer(X)
        width = max(1, min(int(self.bottleneck), m - 1))
        self.network_ = MLPRegressor(
            hidden_layer_sizes=(int(self.hidden), width, int(self.hidden)),
            activation=self.activation,
            alpha=self.alpha,
            learning_rate_init=self.learning_rate_init,
            max_iter=int(self.max_iter),
            random_state=self.random_state,
            shuffle=True,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # one sensor: a 1-D target (scikit-learn warns on a column vector)
            self.network_.fit(Z, Z[:, 0] if m == 1 else Z)
        return self

    def explain(self, X: np.ndarray) -> np.ndarray:
        Z = self._standardize(X)
        reconstruction = self.network_.predict(Z).reshape(Z.shape)
        return (Z - reconstruction) ** 2 / Z.shape[1]

    def anomaly_score(self, X: np.ndarray) -> np.ndarray:
        return self.explain(X).sum(axis=1)
