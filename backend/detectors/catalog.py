"""Detector names -> classes; the one place that builds a detector from a request.

Only names registered here can be built: a request never names a module or class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.base import BaseEstimator

from backend.detectors.isolation_forest import IsolationForestDetector
from backend.detectors.pca import PCADetector

__all__ = ["DETECTORS", "build_detector"]

DETECTORS: Mapping[str, type[BaseEstimator]] = {
    "pca": PCADetector,
    "isolation_forest": IsolationForestDetector,
}


def build_detector(name: str, params: Mapping[str, Any] | None = None) -> BaseEstimator:
    """A fresh detector, or ValueError naming the unknown detector or parameter."""
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise ValueError(f"detector: unknown {name!r}; choose from {sorted(DETECTORS)}") from None
    params = dict(params or {})
    allowed = cls().get_params()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"params: {unknown} not accepted by {name!r}; known: {sorted(allowed)}")
    return cls(**params)
