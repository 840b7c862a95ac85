"""The API refuses out-of-bounds detector parameters with a 422 naming the field, before
a job is created or queued."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from mmlw.api.app import create_app
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine

API = "/api/v1"


class NoDispatch:
    """Fails the test if anything is queued."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        def queued(*_: object, **__: object) -> None:
            raise AssertionError(f"{name} was dispatched")

        return queued


def test_train_and_tune_refuse_parameters_out_of_bounds(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry
) -> None:
    store.readings.add(SyntheticMachine("pump-1", seed=1, n_sensors=3).read(60).to_batch())
    app = create_app(make_settings(), store=store, registry=registry, dispatcher=NoDispatch())  # type: ignore[arg-type]
    with TestClient(app) as client:
        response = client.post(
            f"{API}/machines/pump-1/train",
            json={"detector": "half_space_trees", "params": {"max_depth": 20}},
        )
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "params", "max_depth"]
        assert "max_depth: 20 is outside [1, 12]" in error["msg"]

        response = client.post(
            f"{API}/machines/pump-1/tune",
            json={"grid": {"isolation_forest": {"n_estimators": [100, 100_000]}}},
        )
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "grid", "isolation_forest", "n_estimators", 1]
        assert client.get(f"{API}/jobs").json() == []
