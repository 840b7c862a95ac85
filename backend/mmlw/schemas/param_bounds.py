"""Bounds on detector parameters that size a model, its training time or its state.

A train or tune request is refused (422 naming ``params.<name>``) before any work is
queued when a parameter is out of bounds: unbounded, ``half_space_trees`` with
``max_depth=20`` took a 1.6 GB worker and wrote a 1.6 GB artifact. Bounds are inclusive
and apply to numbers (and to each integer of a list, e.g. ``lags``); strings and other
values are left to the detector, and parameters not named here are not bounded. The
detector classes themselves live in :mod:`mmlw.detectors` (schemas import nothing of
ours): ``tests/unit/test_param_bounds.py`` checks that every name here exists there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

__all__ = ["PARAM_BOUNDS", "Bound", "check_params", "param_errors"]


@dataclass(frozen=True)
class Bound:
    """``low <= value <= high`` for a number (a whole one when ``integer``); a list also
    has at most ``max_items``."""

    low: float
    high: float
    integer: bool = False
    max_items: int = 32


SEED = Bound(0, 2**32 - 1)  # numpy's seeds

PARAM_BOUNDS: Mapping[str, Mapping[str, Bound]] = {
    "pca": {"n_components": Bound(0, 1000)},  # a share in (0, 1), or a count
    "isolation_forest": {  # trees of up to 2 x max_samples nodes
        "n_estimators": Bound(1, 500),
        # a count: a share of the training rows (a float) could be millions of rows a tree
        "max_samples": Bound(1, 4096, integer=True),
        "random_state": SEED,
    },
    "mahalanobis": {"support_fraction": Bound(0, 1), "random_state": SEED},
    "lof": {"n_neighbors": Bound(1, 200)},  # a training row's k distances are kept
    "autoencoder": {
        "hidden": Bound(1, 1024),
        "bottleneck": Bound(1, 256),
        "max_iter": Bound(1, 10_000),
        "random_state": SEED,
    },
    "half_space_trees": {  # n_trees x 2^(max_depth + 1) nodes: at most 100 x 8191
        "n_trees": Bound(1, 100),
        "max_depth": Bound(1, 12),
        "window_size": Bound(1, 100_000),
        "random_state": SEED,
    },
    # rows of history each machine's checkpointed stream state holds
    "pca_temporal": {"lags": Bound(1, 10_000), "windows": Bound(1, 10_000)},
    "level_change": {"window": Bound(1, 1000), "change_lag": Bound(1, 10_000)},
    "adaptive": {"season": Bound(0, 100_000)},  # 0: off; "auto" is not a number
}


def _problem(value: Any, bound: Bound) -> str | None:
    """Why ``value`` breaks ``bound``, or None."""
    if isinstance(value, list):
        if len(value) > bound.max_items:
            return f"at most {bound.max_items} values"
        return next((p for item in value if (p := _problem(item, bound))), None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None  # a name or a flag: the detector checks it
    if bound.integer and not isinstance(value, int):
        return f"{value!r} is not a whole number"
    if not bound.low <= value <= bound.high:
        return f"{value!r} is outside [{bound.low:g}, {bound.high:g}]"
    return None


def param_errors(
    detector: str, params: Mapping[str, Any], loc: tuple[str | int, ...] = ()
) -> list[InitErrorDetails]:
    """One error per parameter of ``detector`` out of bounds, located at ``loc + (name,)``."""
    bounds = PARAM_BOUNDS.get(detector, {})
    errors: list[InitErrorDetails] = []
    for name, value in params.items():
        bound = bounds.get(name)
        problem = None if bound is None else _problem(value, bound)
        if problem is not None:
            error = PydanticCustomError(
                "param_bounds",
                "{name}: {problem} for detector {detector}",
                {"name": name, "problem": problem, "detector": detector},
            )
            errors.append(InitErrorDetails(type=error, loc=(*loc, name), input=value))
    return errors


def check_params(detector: str, params: Mapping[str, Any], title: str = "params") -> None:
    """Raise a :class:`ValidationError` naming each parameter out of bounds (inside a
    pydantic validator, its location nests under the validated field)."""
    errors = param_errors(detector, params)
    if errors:
        raise ValidationError.from_exception_data(title, errors)
