"""Degenerate data, over the whole catalog: every detector (default parameters and every
benchmark config) fits and scores the awkward matrices that real streams (NAB, SKAB)
contain without raising, and returns finite scores and contributions of the right shape.

Constant or near-constant sensors, quantised sensors with very few distinct values, 0/1
states, single-sensor streams, sensors of wildly different magnitude, long runs of
repeated rows and training windows of ~20 rows must never abort an evaluation run. A
sensor that was constant in training and moves later must make scores rise (where the
detector can see it at all) without producing inf.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from mmlw.detectors.catalog import DETECTORS, build_detector, load_detector_configs

CONFIGS = load_detector_configs(Path(__file__).resolve().parents[2] / "configs" / "detectors.yaml")
CASES: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in sorted(DETECTORS)] + [
    (detector, params) for _, (detector, params) in sorted(CONFIGS.items())
]
CASE_IDS = [f"{name}-default" for name in sorted(DETECTORS)] + [
    f"config-{key}" for key in sorted(CONFIGS)
]

#: Detectors that cannot see a sensor that was constant in training move later.
#: isolation_forest: scikit-learn's trees only split on features that vary in the node's
#: training rows, so a feature constant in training is never split on and any value of it
#: lands in the same leaves — its scores are unchanged (they stay finite, and explain still
#: attributes the row's score mostly to the moved sensor).
BLIND_TO_A_NEW_MOVEMENT = frozenset({"isolation_forest"})


class Dataset(NamedTuple):
    train: np.ndarray
    test: np.ndarray
    #: rows of ``test`` that must score higher than all the others (empty: no ordering)
    jump: slice = slice(0, 0)


def _normal(n: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 2))
    return latent @ rng.normal(size=(2, m)) + 0.3 * rng.normal(size=(n, m))


def all_constant() -> Dataset:
    train = np.full((60, 4), 3.0)
    test = np.vstack([np.full((10, 4), 3.0), 3.0 + _normal(10, 4, 1)])
    return Dataset(train, test)


def one_constant_column() -> Dataset:
    data = _normal(300, 4, 2)
    data[:, 2] = 7.0
    return Dataset(data[:220], data[220:])


def near_constant_columns() -> Dataset:
    """Float jitter far below any sensor's resolution, at a large and a small level."""
    data = _normal(300, 4, 10)
    rng = np.random.default_rng(10)
    data[:, 0] = 1e6 + 1e-7 * rng.normal(size=300)
    data[:, 3] = 0.1 + 1e-15 * rng.normal(size=300)
    return Dataset(data[:220], data[220:])


def binary_column() -> Dataset:
    data = _normal(300, 4, 3)
    data[:, 1] = np.random.default_rng(3).random(300) < 0.1
    return Dataset(data[:220], data[220:])


def three_values() -> Dataset:
    data = np.sign(np.round(_normal(300, 4, 4)))  # each column in {-1, 0, 1}
    return Dataset(data[:220], data[220:])


def univariate_normal() -> Dataset:
    data = np.random.default_rng(5).normal(size=(300, 1))
    return Dataset(data[:220], data[220:])


def univariate_constant() -> Dataset:
    train = np.full((200, 1), -2.5)
    test = np.vstack([np.full((10, 1), -2.5), [[-2.4], [0.0], [-2.5]]])
    return Dataset(train, test)


def twenty_training_rows() -> Dataset:
    data = _normal(80, 4, 6)
    return Dataset(data[:20], data[20:])


def huge_and_tiny_scales() -> Dataset:
    data = _normal(300, 4, 7) * np.array([1e-6, 1.0, 1e6, 1e3]) + np.array([0.0, 0.0, 1e6, -1e4])
    return Dataset(data[:220], data[220:])


def duplicated_rows() -> Dataset:
    data = _normal(300, 4, 8)
    idle = np.random.default_rng(8).random(300) < 0.8  # the machine sits idle 80 % of the time
    data[idle] = [1.0, -2.0, 0.5, 3.0]
    return Dataset(data[:220], data[220:])


def constant_then_jump(level: float) -> Callable[[], Dataset]:
    """Sensor 2 sits at ``level`` throughout training; the last 20 test rows move it by 10 %
    of its level (by 1 when the level is 0)."""

    def make() -> Dataset:
        data = _normal(300, 4, 9)
        data[:, 2] = level
        data[-20:, 2] += 0.1 * abs(level) if level else 1.0
        return Dataset(data[:220], data[220:], slice(60, 80))

    return make


DATASETS: dict[str, Callable[[], Dataset]] = {
    "all_constant": all_constant,
    "one_constant_column": one_constant_column,
    "near_constant_columns": near_constant_columns,
    "binary_column": binary_column,
    "three_values": three_values,
    "univariate_normal": univariate_normal,
    "univariate_constant": univariate_constant,
    "twenty_training_rows": twenty_training_rows,
    "huge_and_tiny_scales": huge_and_tiny_scales,
    "duplicated_rows": duplicated_rows,
    "jump_at_1e-6": constant_then_jump(1e-6),
    "jump_at_5": constant_then_jump(5.0),
    "jump_at_1e6": constant_then_jump(1e6),
    "jump_at_0": constant_then_jump(0.0),
}


@pytest.mark.parametrize("data_name", sorted(DATASETS))
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_fits_and_scores_degenerate_data(case: tuple[str, dict[str, Any]], data_name: str) -> None:
    name, params = case
    data = DATASETS[data_name]()
    n, m = data.test.shape
    with warnings.catch_warnings():
        # no overflow / invalid value on the way, and no library warning about the data
        # (scikit-learn's duplicate-value, rank and data-conversion warnings are UserWarnings)
        warnings.simplefilter("error", RuntimeWarning)
        warnings.simplefilter("error", UserWarning)
        detector = build_detector(name, params).fit(data.train)
        scores = detector.anomaly_score(data.test)
        contributions = detector.explain(data.test)
        streamed, carry = detector.stream(data.test, None)
    assert scores.shape == (n,) and np.isfinite(scores).all()
    assert contributions.shape == (n, m) and np.isfinite(contributions).all()
    assert streamed.shape == (n, m) and np.isfinite(streamed).all()
    assert all(isinstance(value, np.ndarray) for value in carry.values())
    np.testing.assert_allclose(contributions.sum(axis=1), scores, rtol=1e-9)
    train_scores = detector.anomaly_score(data.train)
    assert train_scores.shape == (len(data.train),) and np.isfinite(train_scores).all()

    if data.jump.stop and name not in BLIND_TO_A_NEW_MOVEMENT:
        normal = np.delete(scores, np.arange(n)[data.jump])
        # trailing windows (level_change, pca_temporal) need a row or two to see the jump
        assert np.median(scores[data.jump]) > normal.max(), (scores[data.jump], normal.max())
