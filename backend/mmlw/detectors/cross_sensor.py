"""Each sensor's reading minus what the other sensors say it should be.

On a machine, sensors move together: speed, flow, pressure and current follow the
operating point. A level change of the whole machine is operation; one sensor leaving the
others is a fault. :class:`CrossSensorResidual` learns, from training rows, the linear
prediction of every (standardised) sensor from all the others, and maps a row to the
residuals ``z_j - E[z_j | z_others]``. With ``P`` the inverse of the (ridge-regularised)
correlation matrix, that residual is ``(P z)_j / P_jj``: one matrix product per batch.
Sensors that do not correlate keep their own (centred) values; a sensor constant in
training stays near 0 and any later move of it stands out.

>>> rng = np.random.default_rng(0)
>>> speed = rng.normal(size=(500, 1))
>>> X = np.hstack([speed, 2 * speed, -speed]) + 0.01 * rng.normal(size=(500, 3))
>>> cross = CrossSensorResidual.fit(X)
>>> machine = X + np.array([1.0, 2.0, -1.0])  # a new operating point: all move together
>>> bool(np.abs(cross.transform(machine)).max() < 0.2)
True
>>> fault = X.copy(); fault[:, 1] += 1.0  # one sensor leaves the others
>>> bool(np.abs(cross.transform(fault)[:, 1]).mean() > 0.3)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmlw.detectors._scale import floored_scale

__all__ = ["CrossSensorResidual"]


@dataclass(frozen=True)
class CrossSensorResidual:
    """``transform(X) = ((X - center) / scale) @ weights.T`` (see the module docstring)."""

    center: np.ndarray
    scale: np.ndarray
    weights: np.ndarray

    @classmethod
    def fit(cls, X: np.ndarray, ridge: float = 1e-4, eps: float = 1e-9) -> CrossSensorResidual:
        """From training rows ``X`` (at least two sensors); ``ridge`` is added to the
        correlation matrix's diagonal, so the prediction is stable with collinear or
        constant sensors."""
        if X.ndim != 2 or X.shape[1] < 2:
            raise ValueError("X: need at least two sensors")
        if ridge <= 0:
            raise ValueError(f"ridge: {ridge!r} must be positive")
        center = X.mean(axis=0)
        scale = floored_scale(X.std(axis=0), center, eps)
        Z = (X - center) / scale
        corr = (Z.T @ Z) / max(len(Z), 1)
        precision = np.linalg.inv(corr + ridge * np.eye(X.shape[1]))
        weights = precision / np.diag(precision)[:, None]
        return cls(center, scale, weights)

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(((X - self.center) / self.scale) @ self.weights.T)
