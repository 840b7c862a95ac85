"""From a tuning grid to the detector configs to rank, and the feature step each one needs.

Validation happens here, before any work: an unknown detector or parameter, an empty value
list or an impossible temporal feature raises InvalidInput naming the grid field
(``grid.<detector>.<param>``). A config is split into its **feature step** (the temporal
expansion of ``pca_temporal``: lags, windows, diffs; ``None`` = the raw sensors) and the
detector fitted on those features, so configs sharing a feature step share one frame.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mmlw.errors import InvalidInput
from mmlw.schemas.tuning import TuneOptions

if TYPE_CHECKING:  # scikit-learn is loaded when a config is built, not when the API starts
    from sklearn.base import BaseEstimator

__all__ = [
    "MAX_CONFIGS",
    "MAX_GRID",
    "FeatureCache",
    "FeatureStep",
    "TuneConfig",
    "grid_from_file",
    "plan_configs",
    "split_config",
]

MAX_CONFIGS = 500  # configs evaluated in one tuning
MAX_GRID = 100_000  # combinations a random search may draw from
TEMPORAL = "pca_temporal"


@dataclass(frozen=True)
class TuneConfig:
    """One detector config of the grid; ``params`` are exactly what a train job gets."""

    label: str
    detector: str
    params: dict[str, Any]


@dataclass(frozen=True)
class FeatureStep:
    """The temporal expansion of the sensors (see :func:`mmlw.detectors.features`)."""

    lags: tuple[int, ...]
    windows: tuple[int, ...]
    diffs: bool


def _label(detector: str, params: dict[str, Any]) -> str:
    inner = ",".join(f"{k}={v}" for k, v in params.items())
    return f"{detector}({inner})" if inner else detector


def _as_ints(value: Any, field: str, minimum: int) -> list[int]:
    values = value if isinstance(value, list | tuple) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise InvalidInput(field, f"expected an integer or a list of integers, got {value!r}")
    if any(v < minimum for v in values):
        raise InvalidInput(field, f"every value must be >= {minimum}, got {value!r}")
    return [int(v) for v in values]


def _normalised(detector: str, params: dict[str, Any]) -> dict[str, Any]:
    """``pca_temporal``'s lags/windows as integer lists (``lags: 2`` means ``[2]``)."""
    if detector != TEMPORAL:
        return params
    out = dict(params)
    for name, minimum in (("lags", 1), ("windows", 2)):
        if name in out:
            out[name] = _as_ints(out[name], f"grid.{TEMPORAL}.{name}", minimum)
    base = out.get("base")
    if base is not None and (not isinstance(base, str) or base == TEMPORAL):
        raise InvalidInput(
            f"grid.{TEMPORAL}.base", f"expected a registered detector name, got {base!r}"
        )
    return out


def split_config(config: TuneConfig) -> tuple[FeatureStep | None, BaseEstimator]:
    """The config's feature step (None = raw sensors) and the fresh detector fitted on it."""
    from mmlw.detectors.catalog import build_detector
    from mmlw.detectors.features import TemporalFeatures

    if config.detector != TEMPORAL:
        return None, build_detector(config.detector, config.params)
    merged = {**TemporalFeatures().get_params(), **config.params}
    step = FeatureStep(
        lags=tuple(int(v) for v in merged["lags"]),
        windows=tuple(int(v) for v in merged["windows"]),
        diffs=bool(merged["diffs"]),
    )
    return step, build_detector(merged["base"] or "pca")


def plan_configs(options: TuneOptions) -> list[TuneConfig]:
    """Every config of the grid (or ``samples`` of them drawn with ``seed``), validated."""
    from mmlw.detectors.catalog import DETECTORS

    per_detector: list[tuple[str, list[str], list[list[Any]]]] = []
    for name, grid in options.grid.items():
        if name not in DETECTORS:
            raise InvalidInput(f"grid.{name}", f"unknown detector; choose from {sorted(DETECTORS)}")
        known = DETECTORS[name]().get_params()
        for param, values in grid.items():
            if param not in known:
                raise InvalidInput(
                    f"grid.{name}.{param}", f"not a parameter of {name!r}; known: {sorted(known)}"
                )
            if not values:
                raise InvalidInput(f"grid.{name}.{param}", "needs at least one value")
        per_detector.append((name, list(grid), [list(grid[k]) for k in grid]))
    total = sum(math.prod(len(v) for v in lists) for _, _, lists in per_detector)
    limit = MAX_GRID if options.search == "random" else MAX_CONFIGS
    if total > limit:
        raise InvalidInput(
            "grid", f"{total} configurations, at most {limit} for {options.search!r}"
        )
    configs: dict[str, TuneConfig] = {}
    for name, keys, lists in per_detector:
        for combo in itertools.product(*lists):
            params = _normalised(name, dict(zip(keys, combo, strict=True)))
            label = _label(name, params)
            configs.setdefault(label, TuneConfig(label=label, detector=name, params=params))
    planned = list(configs.values())
    if options.search == "random":
        n = min(options.samples or 10, len(planned), MAX_CONFIGS)
        picks = np.random.default_rng(options.seed).choice(len(planned), size=n, replace=False)
        planned = [planned[i] for i in sorted(int(p) for p in picks)]
    for config in planned:
        try:
            split_config(config)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"grid.{config.detector}", str(exc)) from exc
    return planned


def grid_from_file(text: str, source: str) -> dict[str, Any]:
    """The mapping in a YAML or JSON grid file: ``{grid: {...}, search?, samples?, seed?}``
    or just the grid itself (``{detector: {param: [values]}}``)."""
    import yaml

    try:
        raw = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as exc:
        raise InvalidInput(source, f"not YAML or JSON: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput(source, "expected a mapping of detector -> {param: [values]}")
    if "grid" not in raw:
        raw = {"grid": raw}
    for detector, params in raw["grid"].items():
        if params is None:
            raw["grid"][detector] = {}
        elif not isinstance(params, dict):
            raise InvalidInput(f"grid.{detector}", "expected a mapping of param -> list of values")
        else:
            raw["grid"][detector] = {
                k: v if isinstance(v, list) else [v] for k, v in params.items()
            }
    return raw


class FeatureCache:
    """Feature frames of one history, computed once per distinct feature step.

    ``requested`` counts the frames asked for, ``computed`` those actually computed; the
    raw sensors count as one step. The expansion runs over the whole history in time
    order, so the first held-out rows see the training rows as their past (lags look
    back only: nothing of the future leaks).
    """

    def __init__(self, X: np.ndarray) -> None:
        self._X = X
        self._frames: dict[FeatureStep | None, np.ndarray] = {}
        self.requested = 0
        self.computed = 0

    def frame(self, step: FeatureStep | None) -> np.ndarray:
        from mmlw.detectors.features import temporal_features

        self.requested += 1
        if step not in self._frames:
            self._frames[step] = (
                self._X
                if step is None
                else temporal_features(self._X, step.lags, step.windows, step.diffs)[0]
            )
            self.computed += 1
        return self._frames[step]
