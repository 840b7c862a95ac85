"""The HTTP API against real collaborators: a SQLite (or PostgreSQL) store, the session's
MLflow store, and -- where a flow is needed -- the in-process ``memory://`` broker with an
in-process Celery worker and ingest consumer, wired exactly as ``mmlw demo`` wires them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kombu import Connection, Producer
from pydantic import SecretStr

from mmlw.api.app import create_app
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas.readings import ReadingsBatch
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.celery_app import create_celery
from mmlw.workers.context import WorkerContext
from mmlw.workers.runtime import ingest_consumer_thread, scorer_thread, worker_thread
from mmlw.workers.simulator import SyntheticMachine
from tests.support.wait import wait_for

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
API = "/api/v1"


# --- helpers ---------------------------------------------------------------------------


def machine(machine_id: str = "pump-1", *, n_sensors: int = 4, seed: int = 1) -> SyntheticMachine:
    """A fault-free synthetic machine with fixed timestamps."""
    return SyntheticMachine(machine_id, seed=seed, n_sensors=n_sensors, start=START, warmup=100_000)


def post_batch(client: TestClient, batch: ReadingsBatch, machine_id: str | None = None) -> Any:
    return client.post(
        f"{API}/machines/{machine_id or batch.machine_id}/readings",
        content=batch.to_wire(),
        headers={"content-type": "application/json"},
    )


def body_of(batch: ReadingsBatch) -> dict[str, Any]:
    return json.loads(batch.to_wire())  # type: ignore[no-any-return]


def error_text(response: Any) -> str:
    """Where and what of each error in ``detail`` (never the echoed input)."""
    detail = response.json()["detail"]
    if isinstance(detail, str):
        return detail
    return " | ".join(
        ".".join(str(p) for p in item.get("loc", [])) + ": " + item.get("msg", "")
        for item in detail
    )


def machine_row(client: TestClient, machine_id: str) -> dict[str, Any] | None:
    response = client.get(f"{API}/machines")
    assert response.status_code == 200, response.text
    return next((m for m in response.json() if m["id"] == machine_id), None)


def wait_for_readings(client: TestClient, machine_id: str, n: int) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        row = machine_row(client, machine_id)
        return row if row is not None and row["n_readings"] >= n else None

    row = wait_for(probe, what=f"{n} stored readings of {machine_id}")
    assert row["n_readings"] == n
    return row


def wait_for_job(client: TestClient, job_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        response = client.get(f"{API}/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        return job if job["state"] in ("succeeded", "failed") else None

    return wait_for(probe, what=f"job {job_id} to finish")


# --- fixtures --------------------------------------------------------------------------


@dataclass
class Pipeline:
    settings: Settings
    context: WorkerContext
    client: TestClient


@contextmanager
def running_pipeline(settings: Settings) -> Iterator[Pipeline]:
    """Store + Celery worker + scorer + ingest consumer on ``settings.broker.url``, and the API."""
    context = WorkerContext(settings, migrate=True)
    celery = create_celery(settings, context)
    try:
        with (
            worker_thread(celery),
            scorer_thread(settings, context),
            ingest_consumer_thread(settings, context),
        ):
            app = create_app(
                settings,
                store=context.store,
                registry=context.registry,
                dispatcher=context.dispatcher,
            )
            with TestClient(app) as client:
                yield Pipeline(settings, context, client)
    finally:
        context.store.close()


@contextmanager
def standalone_client(settings: Settings) -> Iterator[TestClient]:
    """The app building every collaborator from ``settings`` itself (no workers), over
    a database migrated first (the app only checks its revision)."""
    Store.open(settings.resolved_database_url).close()
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def pipeline(
    make_settings: Callable[..., Settings], registry: MlflowRegistry
) -> Iterator[Pipeline]:
    # ``registry`` makes sure the session's MLflow store and experiment exist.
    with running_pipeline(make_settings()) as running:
        yield running


@pytest.fixture
def client(
    make_settings: Callable[..., Settings], registry: MlflowRegistry
) -> Iterator[TestClient]:
    with standalone_client(make_settings()) as the_client:
        yield the_client


def with_keys(settings: Settings, *keys: str) -> Settings:
    api = settings.api.model_copy(update={"keys": [SecretStr(k) for k in keys]})
    return settings.model_copy(update={"api": api})


# --- health and OpenAPI ----------------------------------------------------------------


def test_health_needs_no_api_key(make_settings: Callable[..., Settings]) -> None:
    with standalone_client(with_keys(make_settings(), "k1")) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] == "sqlite"
    assert response.json()["broker"] == "memory"


def test_openapi_lists_the_endpoints(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        "/health": {"get"},
        f"{API}/machines": {"get"},
        f"{API}/machines/{{machine_id}}": {"get"},
        f"{API}/machines/{{machine_id}}/readings": {"get", "post"},
        f"{API}/machines/{{machine_id}}/scores": {"get"},
        f"{API}/machines/{{machine_id}}/models": {"get"},
        f"{API}/machines/{{machine_id}}/train": {"post"},
        f"{API}/jobs": {"get"},
        f"{API}/jobs/{{job_id}}": {"get"},
        f"{API}/dead-letters": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, f"{path} missing from OpenAPI"
        assert methods <= set(paths[path]), f"{path}: {set(paths[path])}"


# --- API keys --------------------------------------------------------------------------


def test_api_keys_guard_the_api(make_settings: Callable[..., Settings]) -> None:
    with standalone_client(with_keys(make_settings(), "k1", "k2")) as client:
        missing = client.get(f"{API}/machines")
        wrong = client.get(f"{API}/machines", headers={"X-API-Key": "k3"})
        right = client.get(f"{API}/machines", headers={"X-API-Key": "k1"})
        second = client.get(f"{API}/jobs", headers={"X-API-Key": "k2"})
        post = post_batch(client, machine().read(3).to_batch())
        openapi = client.get("/openapi.json")
    assert missing.status_code == 401
    assert "X-API-Key" in missing.json()["detail"]
    assert missing.headers.get("www-authenticate")
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert right.json() == []
    assert second.status_code == 200
    assert post.status_code == 401
    assert openapi.status_code == 200


def test_no_keys_configured_means_open_api(client: TestClient) -> None:
    assert client.get(f"{API}/machines").status_code == 200
    assert client.get(f"{API}/machines", headers={"X-API-Key": "anything"}).status_code == 200


# --- readings: the happy path ----------------------------------------------------------


def test_posted_readings_flow_into_the_store(
    database_url: str, make_settings: Callable[..., Settings], registry: MlflowRegistry
) -> None:
    source = machine("press-7", n_sensors=3)
    first, second = source.read(30).to_batch(), source.read(12).to_batch()
    with running_pipeline(make_settings(database_url=database_url)) as running:
        client = running.client
        accepted = post_batch(client, first)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json() == {
            "message_id": str(first.message_id),
            "machine_id": "press-7",
            "readings": 30,
        }
        # a redelivered batch (same message_id) is stored once; the queue is FIFO, so
        # once the second batch is stored the duplicate has been handled too
        assert post_batch(client, first).status_code == 202
        assert post_batch(client, second).status_code == 202
        row = wait_for_readings(client, "press-7", 42)
        assert row["columns"] == first.columns
        assert row["n_scored"] == 0
        assert row["champion_version"] is None
        assert datetime.fromisoformat(row["last_reading_at"]) == second.timestamps[-1]

        one = client.get(f"{API}/machines/press-7")
        assert one.status_code == 200
        assert one.json()["n_readings"] == 42

        readings = client.get(f"{API}/machines/press-7/readings")
        assert readings.status_code == 200, readings.text
        out = readings.json()
        assert out["columns"] == first.columns
        assert out["values"] == first.values + second.values
        assert [datetime.fromisoformat(t) for t in out["timestamps"]] == (
            first.timestamps + second.timestamps
        )
        assert out["labels"] == first.labels + second.labels  # type: ignore[operator]

        newest = client.get(f"{API}/machines/press-7/readings", params={"limit": 5}).json()
        assert newest["values"] == second.values[-5:]
        window = client.get(
            f"{API}/machines/press-7/readings",
            params={
                "start": first.timestamps[10].isoformat(),
                "end": first.timestamps[20].isoformat(),
            },
        ).json()
        assert window["values"] == first.values[10:20]


# --- readings: bad input ---------------------------------------------------------------


def _valid_body() -> dict[str, Any]:
    return body_of(machine("pump-1", n_sensors=3).read(2).to_batch())


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


BAD_BODIES = {
    "string value": (_set(("values", 0, 1), "high"), "values.0.1"),
    "row of wrong width": (_set(("values", 1), [1.0]), "values[1]"),
    "unknown field": (_set(("colour",), "red"), "colour"),
    "wrong schema": (_set(("schema",), "mmlw.readings/2"), "schema"),
    "naive timestamp": (_set(("timestamps", 0), "2026-11-22T10:00:00"), "timestamps.0"),
    "duplicate column": (_set(("columns", 2), "Current"), "columns"),
    "label not 0/1": (_set(("labels",), [0, 2]), "labels.1"),
    "labels of wrong length": (_set(("labels",), [0]), "labels"),
    "no readings": (lambda b: b.update(timestamps=[], values=[], labels=None), "timestamps"),
    "bad sensor name": (_set(("columns", 0), "bad;name"), "columns.0"),
    "missing machine id": (lambda b: b.pop("machine_id"), "machine_id"),
}


@pytest.mark.parametrize("case", BAD_BODIES)
def test_bad_batches_are_rejected_naming_the_field(client: TestClient, case: str) -> None:
    mutate, field = BAD_BODIES[case]
    body = _valid_body()
    mutate(body)
    response = client.post(f"{API}/machines/pump-1/readings", json=body)
    assert response.status_code == 422, response.text
    assert field in error_text(response), error_text(response)
    assert machine_row(client, "pump-1") is None


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_values_are_rejected(client: TestClient, literal: str) -> None:
    # strict JSON cannot carry NaN/inf, but Python's json (and many clients) write them
    body = _valid_body()
    body["values"][0][0] = "__placeholder__"
    text = json.dumps(body).replace('"__placeholder__"', literal)
    response = client.post(
        f"{API}/machines/pump-1/readings",
        content=text.encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert "values.0.0" in error_text(response), error_text(response)


def test_body_that_is_not_json_is_rejected(client: TestClient) -> None:
    response = client.post(
        f"{API}/machines/pump-1/readings",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422


def test_machine_id_of_path_and_body_must_agree(client: TestClient) -> None:
    batch = machine("pump-2").read(3).to_batch()
    response = post_batch(client, batch, machine_id="pump-1")
    assert response.status_code == 422
    assert "machine_id" in error_text(response)
    assert "pump-2" in error_text(response)


def test_invalid_machine_id_in_path_is_rejected(client: TestClient) -> None:
    response = client.post(f"{API}/machines/bad%20id!/readings", json=_valid_body())
    assert response.status_code == 422
    assert "machine_id" in error_text(response)


def test_oversized_batch_gets_413(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    settings = settings.model_copy(
        update={"broker": settings.broker.model_copy(update={"max_batch_readings": 5})}
    )
    source = machine("pump-1")
    with standalone_client(settings) as client:
        too_big = post_batch(client, source.read(6).to_batch())
        just_fits = post_batch(client, source.read(5).to_batch())
    assert too_big.status_code == 413
    assert "timestamps" in error_text(too_big)
    assert "5" in error_text(too_big)
    assert just_fits.status_code == 202


# --- not found -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/readings", "/scores", "/models"])
def test_unknown_machine_is_404_on_every_get_route(client: TestClient, suffix: str) -> None:
    response = client.get(f"{API}/machines/no-such-machine{suffix}")
    assert response.status_code == 404
    assert "no-such-machine" in response.json()["detail"]


def test_unknown_job_is_404(client: TestClient) -> None:
    response = client.get(f"{API}/jobs/{uuid.uuid4()}")
    assert response.status_code == 404
    assert client.get(f"{API}/jobs/not-a-uuid").status_code == 422
    assert client.get(f"{API}/jobs").json() == []


# --- training and scoring --------------------------------------------------------------


def test_train_unknown_detector_is_422(client: TestClient) -> None:
    response = client.post(f"{API}/machines/pump-1/train", json={"detector": "nope"})
    assert response.status_code == 422
    assert "detector" in error_text(response)
    assert "nope" in error_text(response)
    assert client.get(f"{API}/jobs").json() == []


def test_train_unknown_machine_is_404(client: TestClient) -> None:
    response = client.post(f"{API}/machines/no-such-machine/train", json={})
    assert response.status_code == 404
    assert "no-such-machine" in response.json()["detail"]
    assert client.get(f"{API}/jobs").json() == []


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"last_n": 3}, "last_n"),
        ({"min_readings": 1}, "min_readings"),
        ({"threshold_quantile": 0.2}, "threshold_quantile"),
        ({"epochs": 3}, "epochs"),
        ({"start": "2026-11-22T11:00:00Z", "end": "2026-11-22T10:00:00Z"}, "end"),
    ],
)
def test_bad_train_options_are_422(client: TestClient, options: dict[str, Any], field: str) -> None:
    response = client.post(f"{API}/machines/pump-1/train", json=options)
    assert response.status_code == 422
    assert field in error_text(response), error_text(response)


def test_train_then_new_readings_get_scored(pipeline: Pipeline) -> None:
    client = pipeline.client
    source = machine("pump-1", n_sensors=4)
    assert post_batch(client, source.read(120).to_batch()).status_code == 202
    wait_for_readings(client, "pump-1", 120)

    submitted = client.post(f"{API}/machines/pump-1/train", json={"detector": "pca"})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    assert submitted.json()["state"] == "queued"
    assert submitted.json()["machine_id"] == "pump-1"

    job = wait_for_job(client, job_id)
    assert job["state"] == "succeeded", job["error"]
    assert job["error"] is None
    result = job["result"]
    assert result["version"] == 1
    assert result["aliases"] == ["champion"]
    assert result["n_readings"] == 120
    assert result["model_name"] == f"{pipeline.settings.models.registered_model_prefix}pump-1"
    assert job["started_at"] is not None and job["finished_at"] is not None

    listed = client.get(f"{API}/jobs", params={"machine_id": "pump-1"}).json()
    assert [j["id"] for j in listed] == [job_id]

    models = client.get(f"{API}/machines/pump-1/models")
    assert models.status_code == 200
    [version] = models.json()
    assert version["version"] == 1
    assert version["aliases"] == ["champion"]
    assert version["detector"] == "pca"
    assert version["threshold"] == pytest.approx(result["threshold"])
    assert version["metrics"]["n_readings"] == 120
    assert machine_row(client, "pump-1")["champion_version"] == 1  # type: ignore[index]

    # readings that arrive now are scored by the champion, and so are the 120 readings
    # from before it (the train job backfills them with the new version)
    fresh = source.read(20).to_batch()
    assert post_batch(client, fresh).status_code == 202

    def scored() -> dict[str, Any] | None:
        out = client.get(f"{API}/machines/pump-1/scores").json()
        return out if len(out["scores"]) >= 140 else None

    everything = wait_for(scored, what="140 scores of pump-1")
    assert len(everything["scores"]) == 140
    assert everything["model_versions"] == [1] * 140
    scores = client.get(f"{API}/machines/pump-1/scores", params={"limit": 20}).json()
    assert len(scores["scores"]) == 20
    assert [datetime.fromisoformat(t) for t in scores["timestamps"]] == fresh.timestamps
    assert scores["columns"] == fresh.columns
    assert scores["thresholds"] == [pytest.approx(result["threshold"])] * 20
    assert scores["flags"] == [
        s > t for s, t in zip(scores["scores"], scores["thresholds"], strict=True)
    ]
    assert scores["model_versions"] == [1] * 20
    assert len(scores["top_sensors"]) == 20
    # contributions are kept for flagged readings and each batch's worst (mmlw.store.compact)
    assert any(everything["top_sensors"])
    for top, flagged in zip(scores["top_sensors"], scores["flags"], strict=True):
        assert len(top) == 3 or (not top and not flagged)
        assert {t["sensor"] for t in top} <= set(fresh.columns)
        contributions = [t["contribution"] for t in top]
        assert contributions == sorted(contributions, reverse=True)

    top_one = client.get(f"{API}/machines/pump-1/scores", params={"top": 1, "limit": 4}).json()
    assert len(top_one["scores"]) == 4
    assert top_one["scores"] == scores["scores"][-4:]
    assert all(len(top) == 1 for top in top_one["top_sensors"])

    def counted() -> dict[str, Any] | None:
        row = machine_row(client, "pump-1")
        return row if row is not None and row["n_scored"] >= 140 else None

    row = wait_for(counted, what="n_scored of pump-1")
    assert row["n_scored"] == 140
    assert row["n_readings"] == 140


def test_train_with_too_few_readings_fails_the_job(pipeline: Pipeline) -> None:
    client = pipeline.client
    assert post_batch(client, machine("fan-3").read(20).to_batch()).status_code == 202
    wait_for_readings(client, "fan-3", 20)

    submitted = client.post(f"{API}/machines/fan-3/train", json={})
    # the API does not count readings: the job is accepted and fails in the worker
    assert submitted.status_code == 202, submitted.text
    job = wait_for_job(client, submitted.json()["id"])
    assert job["state"] == "failed"
    assert job["result"] is None
    assert "20 complete readings" in job["error"]
    assert "at least 50" in job["error"]
    assert client.get(f"{API}/machines/fan-3/models").json() == []
    assert machine_row(client, "fan-3")["champion_version"] is None  # type: ignore[index]


# --- dead letters ----------------------------------------------------------------------


def test_invalid_messages_on_the_broker_become_dead_letters(pipeline: Pipeline) -> None:
    client = pipeline.client
    topology = pipeline.context.topology
    assert client.get(f"{API}/dead-letters").json() == []
    valid = machine("pump-1").read(3).to_batch()
    wrong_schema = {**body_of(valid), "schema": "other/9"}
    messages = [
        ("pump-9", b"{not json", "dl-json"),
        ("pump-1", json.dumps(wrong_schema).encode(), "dl-schema"),
        ("pump-2", valid.to_wire(), "dl-routing"),  # routing key != machine_id
    ]
    with Connection(pipeline.settings.broker.url) as connection:
        channel = connection.channel()
        topology.declare(channel)
        producer = Producer(channel, exchange=topology.readings_exchange())
        for routing_key, body, message_id in messages:
            producer.publish(
                body,
                routing_key=routing_key,
                content_type="application/json",
                content_encoding="utf-8",
                message_id=message_id,
            )

    def dead_letters() -> list[dict[str, Any]] | None:
        response = client.get(f"{API}/dead-letters")
        assert response.status_code == 200, response.text
        found = response.json()
        return found if len(found) >= 3 else None

    found = {d["message_id"]: d for d in wait_for(dead_letters, what="3 dead letters")}
    assert set(found) == {"dl-json", "dl-schema", "dl-routing"}
    assert found["dl-json"]["reason"].startswith("body:")
    assert found["dl-json"]["body_preview"] == "{not json"
    assert found["dl-json"]["body_bytes"] == len(b"{not json")
    assert found["dl-json"]["routing_key"] == "pump-9"
    assert found["dl-schema"]["reason"].startswith("schema:")
    assert "other/9" in found["dl-schema"]["reason"]
    assert found["dl-routing"]["reason"].startswith("machine_id:")
    assert all(d["source"] == "amqp" for d in found.values())
    assert client.get(f"{API}/dead-letters", params={"limit": 1}).json()[0]["id"] == max(
        d["id"] for d in found.values()
    )
    # nothing of them was stored as readings
    assert client.get(f"{API}/machines").json() == []


def test_readings_of_batches_with_different_sensors_come_back_with_gaps(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry
) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    store.readings.add(
        ReadingsBatch(machine_id="m", columns=["a", "b"], timestamps=[t0], values=[[1.0, 2.0]])
    )
    later = t0 + timedelta(seconds=1)
    store.readings.add(
        ReadingsBatch(machine_id="m", columns=["a"], timestamps=[later], values=[[3.0]])
    )
    with TestClient(create_app(make_settings(), store=store, registry=registry)) as client:
        body = client.get(f"{API}/machines/m/readings").json()
    assert body["columns"] == ["a", "b"] and body["values"] == [[1.0, 2.0], [3.0, None]]
