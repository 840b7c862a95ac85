"""Detector contract over every registered detector, plus the thresholded model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from mmlw.detectors.catalog import DETECTORS, build_detector
from mmlw.detectors.model import AnomalyModel
from mmlw.detectors.threshold import quantile_threshold


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
    scores = detector.anomaly_score(X[:37])
    assert scores.shape == (37,)
    assert np.isfinite(scores).all()


def test_faults_score_higher_than_normal(name: str) -> None:
    detector = build_detector(name).fit(correlated(600))
    normal = correlated(200, seed=1)
    broken = normal.copy()
    broken[:, 2] += 3.0  # breaks the correlation and shifts the level
    assert np.median(detector.anomaly_score(broken)) > np.median(detector.anomaly_score(normal))


def test_explain_sums_to_score_and_names_the_sensor(name: str) -> None:
    detector = build_detector(name).fit(correlated(600))
    X = correlated(50, seed=2)
    X[:, 3] += 4.0
    contributions = detector.explain(X)
    assert contributions.shape == X.shape
    np.testing.assert_allclose(contributions.sum(axis=1), detector.anomaly_score(X), rtol=1e-9)
    assert np.bincount(contributions.argmax(axis=1), minlength=5).argmax() == 3


def test_deterministic_and_clonable(name: str) -> None:
    X = correlated(300)
    a = build_detector(name).fit(X).anomaly_score(X)
    b = clone(build_detector(name)).fit(X).anomaly_score(X)
    np.testing.assert_array_equal(a, b)
    params = build_detector(name).get_params()
    assert build_detector(name, params).get_params() == params


def test_unfitted_and_bad_input_raise_clear_errors(name: str) -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        build_detector(name).anomaly_score(np.zeros((2, 5)))
    detector = build_detector(name).fit(correlated(100))
    with pytest.raises(ValueError, match="features"):
        detector.anomaly_score(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        detector.anomaly_score(np.full((2, 5), np.nan))


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


# --- detector-specific behaviour -------------------------------------------------------


def test_half_space_trees_partial_fit_swaps_windows_and_ignores_chunking() -> None:
    from mmlw.detectors.half_space_trees import HalfSpaceTreesDetector

    X = correlated(600)
    stream = correlated(250, seed=3) + 5.0
    whole = HalfSpaceTreesDetector(window_size=100).fit(X)
    before = whole.reference_mass_.copy()
    whole.partial_fit(stream)
    assert whole.latest_rows_ == 50
    assert not np.array_equal(whole.reference_mass_, before)
    chunked = HalfSpaceTreesDetector(window_size=100).fit(X)
    for start in range(0, 250, 7):
        chunked.partial_fit(stream[start : start + 7])
    np.testing.assert_array_equal(chunked.reference_mass_, whole.reference_mass_)
    np.testing.assert_array_equal(chunked.latest_mass_, whole.latest_mass_)
    shifted = correlated(50, seed=4) + 5.0
    fresh = HalfSpaceTreesDetector(window_size=100).fit(X)
    assert np.median(whole.anomaly_score(shifted)) < np.median(fresh.anomaly_score(shifted))
    unfitted = HalfSpaceTreesDetector().partial_fit(X)
    np.testing.assert_array_equal(
        unfitted.anomaly_score(X), fresh.set_params(window_size=250).fit(X).anomaly_score(X)
    )


def test_robust_zscore_max_and_smoothing() -> None:
    from mmlw.detectors.zscore import RobustZScoreDetector

    X = correlated(400)
    X[:, 4] = 1.0  # a constant sensor must not divide by zero
    row = np.median(X, axis=0)[None, :]
    row[0, 1] += 10.0
    maximum = RobustZScoreDetector(aggregate="max").fit(X)
    parts = maximum.explain(row)
    assert np.count_nonzero(parts) == 1 and parts.argmax() == 1
    smooth = RobustZScoreDetector(smoothing=0.5).fit(X)
    batch = np.repeat(row, 3, axis=0)
    np.testing.assert_allclose(smooth.anomaly_score(batch), smooth.anomaly_score(batch[:1])[0])
    with pytest.raises(ValueError, match="aggregate"):
        RobustZScoreDetector(aggregate="median").fit(X)


def test_temporal_features_have_no_nan_and_fold_back_onto_sensors() -> None:
    from mmlw.detectors.features import TemporalFeatures, temporal_features
    from mmlw.detectors.mahalanobis import MahalanobisDetector

    X = correlated(200)
    expanded, source = temporal_features(X[:3], lags=(1, 2), windows=(5,), diffs=True)
    assert expanded.shape == (3, 5 * 6) and np.isfinite(expanded).all()
    assert np.bincount(source).tolist() == [6] * 5
    detector = TemporalFeatures(base=MahalanobisDetector(), lags=(1, 2)).fit(X)
    assert detector.explain(X[:30]).shape == (30, 5)
    params = detector.get_params()
    assert "base__ridge" in params
    np.testing.assert_array_equal(
        clone(detector).fit(X).anomaly_score(X[:30]), detector.anomaly_score(X[:30])
    )
    with pytest.raises(ValueError, match="lags"):
        TemporalFeatures(lags=(0,)).fit(X)
    by_name = build_detector("pca_temporal", {"base": "robust_zscore"}).fit(X)
    assert by_name.explain(X[:5]).shape == (5, 5)
    with pytest.raises(ValueError, match="unknown 'nope'"):
        build_detector("pca_temporal", {"base": "nope"}).fit(X)
    with pytest.raises(ValueError, match="not a detector"):
        build_detector("pca_temporal", {"base": {"n": 1}}).fit(X)


def test_pca_temporal_sees_a_broken_dynamic_that_static_pca_misses() -> None:
    t = np.arange(1200) / 5
    rng = np.random.default_rng(0)
    X = np.column_stack([np.sin(t), np.cos(t), np.sin(2 * t)]) + 0.01 * rng.normal(size=(1200, 3))
    scrambled = X[900:].copy()
    rng.shuffle(scrambled)  # each row is still normal; the sequence is not
    temporal = build_detector("pca_temporal").fit(X[:900])
    static = build_detector("pca").fit(X[:900])
    ratio_temporal = np.median(temporal.anomaly_score(scrambled)) / np.median(
        temporal.anomaly_score(X[900:])
    )
    ratio_static = np.median(static.anomaly_score(scrambled)) / np.median(
        static.anomaly_score(X[900:])
    )
    assert ratio_temporal > 3 * ratio_static


def test_repo_benchmark_configs_load() -> None:
    from pathlib import Path

    from mmlw.detectors.catalog import load_detector_configs

    path = Path(__file__).resolve().parents[2] / "configs" / "detectors.yaml"
    assert set(load_detector_configs(path)) >= set(DETECTORS)
