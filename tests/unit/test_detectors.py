"""Detector contract over every registered detector, plus the thresholded model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from backend.detectors.catalog import DETECTORS, build_detector
from backend.detectors.model import AnomalyModel
from backend.detectors.threshold import quantile_threshold


def correlated(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 2))
    mixing = np.array([[1.0, 0.5, -1.0, 0.2, 0.8], [0.1, 1.0, 0.3, -0.7, 0.4]])
    return latent @ mixing + 0.05 * rng.normal(size=(n, 5))


@pytest.fixture(params=sorted(DETECTORS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_fit_returns_self_and_scores_have_one_per_row(name: str) -> None:
    detector = build_detector(name)
    X = correlated(400)
    assert detector.fit(X) is detector
    scores = detector.score_samples(X[:37])
    assert scores.shape == (37,)
    assert np.isfinite(scores).all()


def test_faults_score_higher_than_normal(name: str) -> None:
    detector = build_detector(name).fit(correlated(600))
    normal = correlated(200, seed=1)
    broken = normal.copy()
    broken[:, 2] += 3.0  # breaks the correlation and shifts the level
    assert np.median(detector.score_samples(broken)) > np.median(detector.score_samples(normal))


def test_explain_sums_to_score_and_names_the_sensor(name: str) -> None:
    detector = build_detector(name).fit(correlated(600))
    X = correlated(50, seed=2)
    X[:, 3] += 4.0
    contributions = detector.explain(X)
    assert contributions.shape == X.shape
    np.testing.assert_allclose(contributions.sum(axis=1), detector.score_samples(X), rtol=1e-9)
    assert np.bincount(contributions.argmax(axis=1), minlength=5).argmax() == 3


def test_deterministic_and_clonable(name: str) -> None:
    X = correlated(300)
    a = build_detector(name).fit(X).score_samples(X)
    b = clone(build_detector(name)).fit(X).score_samples(X)
    np.testing.assert_array_equal(a, b)
    params = build_detector(name).get_params()
    assert build_detector(name, params).get_params() == params


def test_unfitted_and_bad_input_raise_clear_errors(name: str) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        build_detector(name).score_samples(np.zeros((2, 5)))
    detector = build_detector(name).fit(correlated(100))
    with pytest.raises(ValueError, match="features"):
        detector.score_samples(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        detector.score_samples(np.full((2, 5), np.nan))


def test_catalog_refuses_unknown_names_and_params() -> None:
    with pytest.raises(ValueError, match=r"unknown 'os\.system'"):
        build_detector("os.system")
    with pytest.raises(ValueError, match="not accepted"):
        build_detector("pca", {"evil": 1})


def test_quantile_threshold_flags_the_expected_share() -> None:
    scores = np.random.default_rng(0).exponential(size=10_000)
    threshold = quantile_threshold(scores, 0.99)
    assert 0.009 < np.mean(scores > threshold) < 0.011
    with pytest.raises(ValueError):
        quantile_threshold(np.array([]), 0.99)


def test_anomaly_model_aligns_columns_by_name() -> None:
    X = correlated(300)
    columns = list("abcde")
    model = AnomalyModel(build_detector("pca").fit(X), 5.0, columns, "pca")
    frame = pd.DataFrame(X[:20], columns=columns)
    shuffled = frame[["c", "a", "e", "b", "d"]]
    np.testing.assert_array_equal(model.score(frame).scores, model.score(shuffled).scores)
    with pytest.raises(ValueError, match="missing sensors"):
        model.score(frame.drop(columns=["b"]))
