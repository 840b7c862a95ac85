"""The detector contract (docs/detectors-evaluation.md), run over every registered detector name."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from mmlw.detectors.catalog import DETECTORS, build_detector, load_detector_configs
from mmlw.detectors.model import AnomalyModel
from mmlw.detectors.threshold import quantile_threshold
from mmlw.registry.base import DatasetInfo
from mmlw.registry.mlflow_registry import MlflowRegistry

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "detectors.yaml"
COLUMNS = [f"s{i}" for i in range(5)]


def correlated(n: int, seed: int = 0) -> np.ndarray:
    """Five sensors driven by two latent signals plus a little noise."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 2))
    mixing = np.array([[1.0, 0.5, -1.0, 0.2, 0.8], [0.1, 1.0, 0.3, -0.7, 0.4]])
    return latent @ mixing + 0.05 * rng.normal(size=(n, 5))


TRAIN = correlated(300)
TEST = correlated(80, seed=1)


@pytest.fixture(params=sorted(DETECTORS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fitted(name: str):  # type: ignore[no-untyped-def]
    return build_detector(name).fit(TRAIN)


def test_fit_returns_self_and_one_finite_score_per_row(name: str) -> None:
    detector = build_detector(name)
    assert detector.fit(TRAIN) is detector
    scores = detector.anomaly_score(TEST)
    assert scores.shape == (len(TEST),)
    assert np.isfinite(scores).all()


def test_scores_a_single_row_and_scoring_does_not_change_the_detector(fitted) -> None:  # type: ignore[no-untyped-def]
    assert fitted.anomaly_score(TEST[:1]).shape == (1,)
    assert fitted.explain(TEST[:1]).shape == (1, TEST.shape[1])
    first = fitted.anomaly_score(TEST)
    np.testing.assert_array_equal(fitted.anomaly_score(TEST), first)


def test_a_constant_sensor_in_training_keeps_scores_finite(name: str) -> None:
    train = TRAIN.copy()
    train[:, 4] = 7.0
    detector = build_detector(name).fit(train)
    assert np.isfinite(detector.anomaly_score(TEST)).all()
    assert np.isfinite(detector.explain(TEST)).all()


def test_two_seeded_fits_give_identical_scores(name: str) -> None:
    a = build_detector(name).fit(TRAIN).anomaly_score(TEST)
    b = build_detector(name).fit(TRAIN).anomaly_score(TEST)
    np.testing.assert_array_equal(a, b)


def test_clone_and_get_params_round_trip(name: str, fitted) -> None:  # type: ignore[no-untyped-def]
    params = build_detector(name).get_params()
    assert build_detector(name, params).get_params() == params
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params()
    assert not hasattr(fresh, "n_features_in_")
    np.testing.assert_array_equal(fresh.fit(TRAIN).anomaly_score(TEST), fitted.anomaly_score(TEST))


def test_explain_has_one_column_per_sensor_and_rows_sum_to_scores(fitted) -> None:  # type: ignore[no-untyped-def]
    contributions = fitted.explain(TEST)
    assert contributions.shape == TEST.shape
    assert np.isfinite(contributions).all()
    np.testing.assert_allclose(contributions.sum(axis=1), fitted.anomaly_score(TEST), rtol=1e-8)


def test_injected_fault_scores_higher_than_normal(
    name: str,
    fitted,  # type: ignore[no-untyped-def]
) -> None:
    broken = TEST.copy()
    broken[:, 1] += 2.5  # breaks the correlation between sensors and shifts a level
    assert np.median(fitted.anomaly_score(broken)) > np.median(fitted.anomaly_score(TEST))


def test_nan_input_is_refused(name: str, fitted) -> None:  # type: ignore[no-untyped-def]
    bad = TEST.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        build_detector(name).fit(bad)
    with pytest.raises(ValueError, match="NaN"):
        fitted.anomaly_score(bad)
    with pytest.raises(ValueError, match="NaN"):
        fitted.explain(bad)


def test_pickle_round_trip_gives_identical_scores(fitted) -> None:  # type: ignore[no-untyped-def]
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.anomaly_score(TEST), fitted.anomaly_score(TEST))
    np.testing.assert_array_equal(restored.explain(TEST), fitted.explain(TEST))


def test_mlflow_save_load_gives_identical_scores(
    name: str,
    fitted,  # type: ignore[no-untyped-def]
    registry: MlflowRegistry,
) -> None:
    threshold = quantile_threshold(fitted.anomaly_score(TRAIN), 0.99)
    model = AnomalyModel(fitted, threshold, COLUMNS, name)
    machine_id = f"contract-{name}-{uuid.uuid4().hex[:8]}"
    dataset = DatasetInfo(
        machine_id=machine_id,
        start="2026-01-01T00:00:00+00:00",
        end="2026-01-01T00:05:00+00:00",
        n_rows=len(TRAIN),
        columns=COLUMNS,
        content_hash=uuid.uuid4().hex,
    )
    version = registry.register(
        machine_id, model, params={}, metrics={}, tags={}, dataset=dataset
    ).version
    frame = pd.DataFrame(TEST, columns=COLUMNS)
    loaded = registry.load(machine_id, version).score(frame)
    original = model.score(frame)
    np.testing.assert_array_equal(loaded.scores, original.scores)
    np.testing.assert_array_equal(loaded.contributions, original.contributions)
    np.testing.assert_array_equal(loaded.flags, original.flags)


def test_benchmark_configs_cover_every_detector_and_build() -> None:
    configs = load_detector_configs(CONFIGS)
    assert {detector for detector, _ in configs.values()} == set(DETECTORS)
    for detector, params in configs.values():
        assert build_detector(detector, params).fit(TRAIN).anomaly_score(TEST).shape == (80,)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x: {detector: os.system}", "unknown 'os.system'"),
        ("pca: {params: {evil: 1}}", r"entry 'pca'.*\['evil'\] not accepted"),
        ("pca: {detector: pca, extra: 1}", r"unknown keys \['extra'\]"),
        ("pca: [1, 2]", "expected a mapping"),
        ("- pca", "mapping of config name"),
        ("pca: {params: {n_components: [}", "cannot read"),
    ],
)
def test_config_loader_names_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "detectors.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_detector_configs(path)


def test_config_loader_refuses_bad_values(tmp_path: Path) -> None:
    path = tmp_path / "detectors.yaml"
    path.write_text("z: {detector: robust_zscore, params: {aggregate: median}}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"entry 'z'.*aggregate"):
        load_detector_configs(path)
