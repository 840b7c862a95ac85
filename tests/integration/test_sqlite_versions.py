"""``mmlw models M`` reads the SQLite MLflow store directly (:mod:`mmlw.registry.sqlite_versions`):
what it reads must be what the MLflow client reports, version for version, including
aliases, metrics, tags and deleted versions left out."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from mmlw.detectors.catalog import build_detector
from mmlw.detectors.model import AnomalyModel
from mmlw.registry.base import CHALLENGER, CHAMPION, DatasetInfo
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.registry.sqlite_versions import sqlite_store_path, sqlite_versions
from tests.conftest import TEST_SIGNING_KEY

COLUMNS = ["a", "b"]
MACHINE = "lathe-3"


def _register(registry: MlflowRegistry, detector: str, threshold: float) -> int:
    X = np.random.default_rng(0).normal(size=(200, len(COLUMNS)))
    model = AnomalyModel(build_detector(detector, {}).fit(X), threshold, COLUMNS, detector)
    return registry.register(
        MACHINE,
        model,
        params={"detector": detector},
        metrics={"threshold": threshold, "train_s": 0.25, "auc": float("nan")},
        tags={"mmlw.job": uuid.uuid4().hex},
        dataset=DatasetInfo(MACHINE, "s", "e", 200, COLUMNS, "0" * 64),
    ).version


def test_reads_what_the_mlflow_client_reports(tracking_uri: str, tmp_path: Path) -> None:
    registry = MlflowRegistry(
        tracking_uri,
        signing_key=TEST_SIGNING_KEY.encode(),
        artifact_root=tmp_path / "artifacts",
        model_prefix=f"v{uuid.uuid4().hex[:8]}-",
    )
    first = _register(registry, "pca", 3.0)
    second = _register(registry, "pca", 2.5)
    third = _register(registry, "pca", 2.0)
    registry.set_alias(MACHINE, CHAMPION, first)
    registry.set_alias(MACHINE, CHALLENGER, third)
    registry.client.delete_model_version(registry.model_name(MACHINE), str(second))

    expected = registry.versions(MACHINE)
    read = sqlite_versions(tracking_uri, registry.model_name(MACHINE))

    assert [v.version for v in expected] == [first, third]
    assert read is not None
    # NaN != NaN: compare the metric names, then everything else
    assert [sorted(v.metrics) for v in read] == [sorted(v.metrics) for v in expected]
    strip = [{**v.model_dump(), "metrics": {}} for v in read]
    assert strip == [{**v.model_dump(), "metrics": {}} for v in expected]
    assert [v.metrics["train_s"] for v in read] == [0.25, 0.25]
    assert sqlite_versions(tracking_uri, registry.model_name("nobody")) == []


def test_only_a_sqlite_file_is_read_directly(tmp_path: Path) -> None:
    assert sqlite_store_path("http://127.0.0.1:5000") is None
    assert sqlite_store_path("postgresql://u@h/mlflow") is None
    assert sqlite_store_path("sqlite://") is None
    assert sqlite_versions("http://127.0.0.1:5000", "m") is None
    assert sqlite_versions(f"sqlite:///{tmp_path / 'absent.db'}", "m") == []
    assert not (tmp_path / "absent.db").exists()  # nothing created
