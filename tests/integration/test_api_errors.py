"""Bad input is a 422 naming the field (an :class:`~mmlw.errors.InvalidInput` raised where
the input is checked); a plain ValueError that reaches the API is a bug: a 500, never
blamed on the client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from mmlw.api.app import create_app
from mmlw.errors import InvalidInput
from mmlw.messaging.sink import ListSink
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas.resources import ModelVersionOut
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


class RegistryWithABug:
    """The real registry, except that listing versions hits a bug (a plain ValueError)."""

    def __init__(self, real: MlflowRegistry) -> None:
        self._real = real

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def versions(self, machine_id: str) -> list[ModelVersionOut]:
        raise ValueError(f"a bug: cannot list the versions of {machine_id}")


@pytest.fixture
def client(
    make_settings: Callable[..., Settings], sqlite_store: Store, registry: MlflowRegistry
) -> Iterator[TestClient]:
    sqlite_store.readings.add(SyntheticMachine("pump-1", seed=1, n_sensors=3).read(60).to_batch())
    app = create_app(
        make_settings(),
        store=sqlite_store,
        registry=RegistryWithABug(registry),  # type: ignore[arg-type]
        dispatcher=NoDispatch(),  # type: ignore[arg-type]
        publisher=ListSink(),
    )
    with TestClient(app, raise_server_exceptions=False) as running:
        yield running


def test_a_naive_time_is_a_422_naming_the_field(client: TestClient) -> None:
    response = client.get(f"{API}/machines/pump-1/models/at", params={"at": "2026-01-01T00:00"})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "at"] and "timezone" in error["msg"]


def test_an_unknown_detector_is_a_422_and_queues_nothing(client: TestClient) -> None:
    response = client.post(f"{API}/machines/pump-1/train", json={"detector": "nope"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("detector: unknown 'nope'")
    assert client.get(f"{API}/jobs").json() == []


def test_a_bad_import_file_is_a_422_naming_column_and_row(client: TestClient) -> None:
    body = "datetime,a\n2026-01-01T00:00:00Z,1.0\n2026-01-01T00:00:01Z,oops\n"
    response = client.post(
        f"{API}/machines/pump-1/imports", content=body, headers={"content-type": "text/csv"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == "a: row 2: 'oops' is not a number"


def test_a_silence_that_ended_before_now_is_a_422(client: TestClient) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    silence = {"matchers": {"machine_id": "pump-1"}, "ends_at": past, "created_by": "me"}
    response = client.post(f"{API}/silences", json=silence)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("ends_at: must be after starts_at")


def test_a_compared_config_out_of_bounds_is_a_422(client: TestClient) -> None:
    configs = [{"detector": "pca"}, {"detector": "half_space_trees", "params": {"max_depth": 20}}]
    response = client.post(f"{API}/machines/pump-1/compare", json={"configs": configs})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("configs: params.max_depth")


def test_a_value_error_from_a_bug_is_a_500(client: TestClient) -> None:
    response = client.get(f"{API}/machines/pump-1/models")
    assert response.status_code == 500, response.text
    assert "a bug" not in response.text  # nothing of the internals is echoed


def test_invalid_input_names_its_field_and_is_still_a_value_error() -> None:
    error = InvalidInput("at", "give a timezone")
    assert (error.field, error.problem, str(error)) == (
        "at",
        "give a timezone",
        "at: give a timezone",
    )
    assert isinstance(error, ValueError)
