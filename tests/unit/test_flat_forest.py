"""The flat forest scores exactly as scikit-learn's IsolationForest: any number of rows
(more than one chunk too), feature subsampling, bootstrap, one training sample; and it is
never pickled with a model."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest

from mmlw.detectors._flat_forest import CHUNK_ROWS, FlatForest
from mmlw.detectors.isolation_forest import IsolationForestDetector

RNG = np.random.default_rng(7)
TRAIN = RNG.normal(size=(500, 6))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"n_estimators": 7, "max_samples": 30},
        {"max_features": 0.5, "random_state": 3},
        {"max_features": 2, "bootstrap": True, "random_state": 4},
    ],
    ids=str,
)
@pytest.mark.parametrize("rows", [1, 2, 37, CHUNK_ROWS, CHUNK_ROWS * 3 + 5])
def test_scores_equal_scikit_learns(params: dict[str, object], rows: int) -> None:
    forest = IsolationForest(random_state=0).set_params(**params).fit(TRAIN)
    X = RNG.normal(scale=2.0, size=(rows, 6))
    X[: rows // 2] = TRAIN[: rows // 2]  # training rows sit exactly on split thresholds' sides
    np.testing.assert_allclose(
        FlatForest.of(forest).scores(X), -forest.score_samples(X), rtol=1e-12, atol=0
    )


def test_one_training_sample_scores_as_scikit_learn_does() -> None:
    forest = IsolationForest(random_state=0).fit(TRAIN[:1])
    X = RNG.normal(size=(3, 6))
    np.testing.assert_array_equal(FlatForest.of(forest).scores(X), -forest.score_samples(X))


def test_a_pickled_detector_carries_the_forest_not_the_flat_copy() -> None:
    detector = IsolationForestDetector(n_estimators=20).fit(TRAIN)
    X = RNG.normal(size=(50, 6))
    before = detector.anomaly_score(X)  # builds the flat copy
    restored = pickle.loads(pickle.dumps(detector))
    assert "_flat_forest" in detector.__dict__ and "_flat_forest" not in restored.__dict__
    np.testing.assert_array_equal(restored.anomaly_score(X), before)
    np.testing.assert_allclose(
        before, -detector.forest_.score_samples(detector._standardize(X)), rtol=1e-12
    )
