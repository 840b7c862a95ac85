"""Detector parameters that size a model are bounded at the request schema, and train,
tune and predict tasks carry time limits from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from mmlw.detectors.catalog import DETECTORS, load_detector_configs
from mmlw.messaging.dispatch import PREDICT_TASK, TRAIN_TASK, TUNE_TASK
from mmlw.schemas.jobs import TrainOptions, TrainRequest
from mmlw.schemas.param_bounds import PARAM_BOUNDS, check_params
from mmlw.schemas.tuning import TuneOptions
from mmlw.settings import Settings, TaskSettings
from mmlw.workers.celery_app import create_celery

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_every_bounded_parameter_exists_in_the_catalog() -> None:
    for detector, bounds in PARAM_BOUNDS.items():
        assert detector in DETECTORS, detector
        known = DETECTORS[detector]().get_params(deep=False)
        assert set(bounds) <= set(known), (detector, sorted(set(bounds) - set(known)))


@pytest.mark.parametrize("detector", sorted(DETECTORS))
def test_every_default_is_within_bounds(detector: str) -> None:
    params = DETECTORS[detector]().get_params(deep=False)
    check_params(detector, {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()})


def test_the_shipped_configs_are_within_bounds() -> None:
    for detector, params in load_detector_configs(CONFIGS / "detectors.yaml").values():
        TrainOptions(detector=detector, params=params)
    grid = yaml.safe_load((CONFIGS / "tuning.example.yaml").read_text())
    TuneOptions(grid=grid.get("grid", grid))


@pytest.mark.parametrize(
    ("detector", "params", "name"),
    [
        ("half_space_trees", {"max_depth": 20}, "max_depth"),  # 1.6 GB worker and artifact
        ("half_space_trees", {"n_trees": 10_000}, "n_trees"),
        ("half_space_trees", {"max_depth": 0}, "max_depth"),
        ("isolation_forest", {"n_estimators": 100_000}, "n_estimators"),
        ("isolation_forest", {"max_samples": 1_000_000}, "max_samples"),
        ("isolation_forest", {"max_samples": 1.0}, "max_samples"),  # all training rows
        ("isolation_forest", {"random_state": -1}, "random_state"),
        ("lof", {"n_neighbors": 5000}, "n_neighbors"),
        ("autoencoder", {"hidden": 100_000}, "hidden"),
        ("autoencoder", {"max_iter": 10**9}, "max_iter"),
        ("pca_temporal", {"lags": [1, 10**6]}, "lags"),
        ("pca_temporal", {"windows": list(range(1, 100))}, "windows"),  # too many
        ("level_change", {"change_lag": 10**7}, "change_lag"),
        ("adaptive", {"season": 10**7}, "season"),
    ],
)
def test_a_parameter_out_of_bounds_is_refused_naming_it(
    detector: str, params: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        TrainOptions(detector=detector, params=params)
    (error,) = refused.value.errors()
    assert error["loc"] == ("params", name)
    assert error["msg"].startswith(f"{name}: ") and detector in error["msg"]
    with pytest.raises(ValidationError):
        TrainRequest(machine_id="pump-1", detector=detector, params=params)


def test_values_the_detector_checks_itself_pass() -> None:
    TrainOptions(detector="isolation_forest", params={"max_samples": "auto", "n_estimators": 500})
    TrainOptions(detector="adaptive", params={"season": "auto"})
    TrainOptions(detector="half_space_trees", params={"max_depth": 12, "size_limit": 5.0})
    TrainOptions(detector="robust_zscore", params={"smoothing": 1e9})  # not sizing anything
    TrainOptions(detector="pca", params={"n_components": 0.5})


def test_every_value_of_a_tune_grid_is_bounded() -> None:
    with pytest.raises(ValidationError) as refused:
        TuneOptions(grid={"pca": {}, "half_space_trees": {"max_depth": [8, 10, 24]}})
    (error,) = refused.value.errors()
    assert error["loc"] == ("grid", "half_space_trees", "max_depth", 2)
    assert "max_depth: 24" in error["msg"]


def test_train_tune_and_predict_tasks_get_the_configured_time_limits(tmp_path: Path) -> None:
    defaults = create_celery(Settings(data_dir=tmp_path))
    assert (defaults.tasks[TRAIN_TASK].soft_time_limit, defaults.tasks[TRAIN_TASK].time_limit) == (
        3300,
        3600,
    )
    assert defaults.tasks[PREDICT_TASK].time_limit == 300
    assert defaults.tasks[TUNE_TASK].time_limit == 7000

    settings = Settings(
        data_dir=tmp_path,
        tasks={
            "train_soft_s": 5,
            "train_hard_s": 10,
            "predict_soft_s": None,
            "predict_hard_s": None,
        },
    )
    app = create_celery(settings)
    assert (app.tasks[TRAIN_TASK].soft_time_limit, app.tasks[TRAIN_TASK].time_limit) == (5, 10)
    assert app.tasks[PREDICT_TASK].time_limit is None


def test_time_limits_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMLW_TASKS__TRAIN_HARD_S", "120")
    monkeypatch.setenv("MMLW_TASKS__TRAIN_SOFT_S", "100")
    assert Settings().tasks.limits("train") == (100, 120)
    with pytest.raises(ValidationError, match="predict_soft_s: must be less than predict_hard_s"):
        TaskSettings(predict_soft_s=60, predict_hard_s=60)
