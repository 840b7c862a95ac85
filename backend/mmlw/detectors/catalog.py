"""Detector names -> classes; the one place that builds a detector from a request.

Only names registered here can be built: a request never names a module or class.
``configs/detectors.yaml`` names the fixed benchmark configurations, loaded and validated
by :func:`load_detector_configs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sklearn.base import BaseEstimator

from mmlw.detectors.adaptive import AdaptiveDetector
from mmlw.detectors.autoencoder import AutoencoderDetector
from mmlw.detectors.features import TemporalFeatures
from mmlw.detectors.half_space_trees import HalfSpaceTreesDetector
from mmlw.detectors.isolation_forest import IsolationForestDetector
from mmlw.detectors.level_change import LevelChangeDetector
from mmlw.detectors.lof import LOFDetector
from mmlw.detectors.mahalanobis import MahalanobisDetector
from mmlw.detectors.pca import PCADetector
from mmlw.detectors.zscore import RobustZScoreDetector
from mmlw.errors import InvalidInput

__all__ = ["DETECTORS", "build_detector", "load_detector_configs"]

DETECTORS: Mapping[str, type[BaseEstimator]] = {
    "pca": PCADetector,
    "isolation_forest": IsolationForestDetector,
    "mahalanobis": MahalanobisDetector,
    "lof": LOFDetector,
    "autoencoder": AutoencoderDetector,
    "robust_zscore": RobustZScoreDetector,
    "half_space_trees": HalfSpaceTreesDetector,
    "pca_temporal": TemporalFeatures,  # base=None -> PCADetector on lags/rolling/diffs
    "level_change": LevelChangeDetector,
    "adaptive": AdaptiveDetector,
}


def build_detector(name: str, params: Mapping[str, Any] | None = None) -> BaseEstimator:
    """A fresh detector, or :class:`InvalidInput` naming the unknown detector or parameter."""
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise InvalidInput(
            "detector", f"unknown {name!r}; choose from {sorted(DETECTORS)}"
        ) from None
    params = dict(params or {})
    allowed = cls().get_params()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise InvalidInput(
            "params", f"{unknown} not accepted by {name!r}; known: {sorted(allowed)}"
        )
    return cls(**params)


def load_detector_configs(path: str | Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{config name: (detector name, params)}`` from a YAML file, each one buildable.

    The file maps config names to ``{detector: <registered name>, params: {...}}``;
    ``detector`` defaults to the config name. Raises ValueError naming the file and entry
    for anything malformed, unknown, or refused by the detector (each config is fitted
    once on a small seeded sample, so bad values fail here rather than at training time).
    """
    import numpy as np
    import yaml

    probe = np.random.default_rng(0).normal(size=(64, 4))

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read detector configs: {exc}") from exc
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"{path}: expected a mapping of config name -> entry")
    configs: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, entry in raw.items():
        where = f"{path}: entry {key!r}"
        entry = {} if entry is None else entry
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where}: expected a mapping with 'detector' and 'params'")
        extra = sorted(set(entry) - {"detector", "params"})
        if extra:
            raise ValueError(f"{where}: unknown keys {extra}; allowed: ['detector', 'params']")
        detector = entry.get("detector", key)
        params = entry.get("params") or {}
        if not isinstance(detector, str) or not isinstance(params, Mapping):
            raise ValueError(f"{where}: 'detector' must be a name and 'params' a mapping")
        try:
            build_detector(detector, params).fit(probe)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from exc
        configs[str(key)] = (detector, dict(params))
    return configs
