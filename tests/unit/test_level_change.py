"""The level/change detector: which sensors count as persistent, and what it then scores."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from mmlw.detectors.catalog import DETECTORS
from mmlw.detectors.features import trailing_mean
from mmlw.detectors.level_change import LevelChangeDetector, persistence_ratio


def test_doctests_of_every_registered_detector_module() -> None:
    modules = {DETECTORS[name].__module__ for name in DETECTORS}
    modules.add("mmlw.detectors.level_change")
    for name in sorted(modules):
        result = doctest.testmod(importlib.import_module(name))
        assert result.failed == 0, name


def test_trailing_mean_by_hand() -> None:
    Z = np.array([[2.0, 0.0], [4.0, 1.0], [6.0, 2.0], [8.0, 3.0]])
    assert trailing_mean(Z, 3).tolist() == [[2.0, 0.0], [3.0, 0.5], [4.0, 1.0], [6.0, 2.0]]


def test_persistence_ratio_by_hand() -> None:
    # x = 0, 1, 2, 3: std = sqrt(1.25), steps all 1 (std 0) -> ratio 0
    # y = 1, -1, 1, -1: std 1, steps -2, 2, -2 (std sqrt(32/9)) -> ratio 1.885
    X = np.array([[0.0, 1.0, 5.0], [1.0, -1.0, 5.0], [2.0, 1.0, 5.0], [3.0, -1.0, 5.0]])
    ratio = persistence_ratio(X)
    assert ratio[0] == 0.0
    assert ratio[1] == pytest.approx(np.sqrt(32 / 9))
    assert ratio[2] == pytest.approx(np.sqrt(2.0))  # constant: treated as noise


def test_persistent_sensor_is_scored_on_change_not_level() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(1000.0)
    warm = 0.02 * t + 0.05 * rng.normal(size=1000)  # keeps drifting after training
    noisy = rng.normal(size=1000)
    X = np.column_stack([warm, noisy])
    det = LevelChangeDetector(window=5, change_lag=30).fit(X[:400])
    assert det.slow_.tolist() == [True, False]
    later = X[400:].copy()
    # the drift carries 'warm' 12 units on, ~4x as far as it went in training: no alarm
    assert det.anomaly_score(later).max() < 3.0
    later[300:, 0] += 5.0  # a step in the persistent sensor is a change: it alarms
    scores = det.anomaly_score(later)
    assert scores[305:330].min() > 3.0
    assert np.argmax(det.explain(later)[310]) == 0
    # a level-only scorer (no sensor counts as persistent) alarms on the drift alone
    level_only = LevelChangeDetector(window=5, slow_ratio=0.0).fit(X[:400])
    assert level_only.anomaly_score(X[400:]).max() > 3.5


def test_explain_puts_the_score_on_the_sensor_that_set_it() -> None:
    rng = np.random.default_rng(2)
    det = LevelChangeDetector().fit(rng.normal(size=(400, 3)))
    X = rng.normal(size=(50, 3))
    X[20:, 2] += 6.0
    parts = det.explain(X)
    assert np.allclose(parts.sum(axis=1), det.anomaly_score(X))
    assert (np.count_nonzero(parts, axis=1) <= 1).all()
    assert (parts[30:].argmax(axis=1) == 2).all()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": 0}, "window and change_lag"),
        ({"change_lag": 0}, "window and change_lag"),
        ({"reference_quantile": 0.2}, "reference_quantile"),
    ],
)
def test_bad_parameters_are_refused_at_fit(params: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LevelChangeDetector(**params).fit(np.zeros((10, 2)))  # type: ignore[arg-type]
