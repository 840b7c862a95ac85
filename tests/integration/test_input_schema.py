"""Scoring checks each batch against the champion's input schema (its MLflow signature),
on a real store and a real MLflow registry: reordered sensors score identically, extra
sensors are dropped (or refused by setting), and a batch missing a sensor ends in the
dead-letter store, unscored, with the reason naming the sensor and the version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mmlw.api.app import create_app
from mmlw.errors import NotFound
from mmlw.messaging.pika_publisher import PikaReadingsPublisher
from mmlw.messaging.topology import Topology
from mmlw.registry.base import CHAMPION
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas import ReadingsBatch
from mmlw.schemas.jobs import TrainRequest
from mmlw.schemas.readings import parse_readings_message
from mmlw.services.jobs import InlineTrainer, submit_training
from mmlw.services.scoring import score_batch
from mmlw.settings import ModelSettings, Settings
from mmlw.store import Store
from mmlw.workers.model_cache import ModelCache
from mmlw.workers.simulator import SyntheticMachine
from tests.conftest import TEST_SIGNING_KEY
from tests.integration.pipeline import delete_topology, running_pipeline, wait_for

MACHINE = "press-1"


def trained(store: Store, tracking_uri: str, tmp_path: Path, prefix: str) -> MlflowRegistry:
    registry = MlflowRegistry(
        tracking_uri,
        signing_key=TEST_SIGNING_KEY.encode(),
        artifact_root=tmp_path / "art",
        model_prefix=prefix,
    )
    machine = SyntheticMachine(MACHINE, seed=3, n_sensors=4, warmup=10_000)
    for _ in range(6):
        store.readings.add(machine.read(50).to_batch())
    trainer = InlineTrainer(store, registry, ModelSettings())
    # a row-wise detector: the same readings, sent three times, score the same each time
    request = TrainRequest(machine_id=MACHINE, detector="pca")
    submit_training(request, store=store, dispatcher=trainer)
    assert registry.alias_version(MACHINE, CHAMPION) == 1
    return registry


def variant(
    batch: ReadingsBatch, columns: list[str], extra: dict[str, float] | None = None
) -> ReadingsBatch:
    """The same readings with ``columns`` (a reordering or subset) plus ``extra`` sensors."""
    index = [batch.columns.index(c) for c in columns]
    values = [[row[i] for i in index] + list((extra or {}).values()) for row in batch.values]
    names = columns + list(extra or {})
    return ReadingsBatch.of_rows(batch.machine_id, names, batch.timestamps, values)


def test_reordered_and_extra_sensors_score_like_the_ordered_batch(
    store: Store, tracking_uri: str, tmp_path: Path, unique_prefix: str
) -> None:
    registry = trained(store, tracking_uri, tmp_path, unique_prefix)
    models = ModelCache(registry, ttl_s=0)
    schema = registry.load(MACHINE, 1).input_schema
    import mlflow.models

    signature = mlflow.models.get_model_info(f"models:/{unique_prefix}{MACHINE}/1").signature
    assert signature.inputs.input_names() == list(schema.columns)  # the version's signature
    assert {spec.type.name for spec in signature.inputs.inputs} == {"double"}

    batch = SyntheticMachine(MACHINE, seed=4, n_sensors=4).read(30).to_batch()
    columns = list(batch.columns)
    ordered = store.readings.add(batch).batch_id
    shuffled = store.readings.add(variant(batch, columns[::-1])).batch_id
    wider = store.readings.add(variant(batch, columns[1:] + columns[:1], {"Spare": 7.0})).batch_id
    outcomes = [score_batch(i, store=store, models=models) for i in (ordered, shuffled, wider)]
    assert [o.status for o in outcomes] == ["scored"] * 3
    first, *others = [o.scores for o in outcomes]
    assert first is not None and all(o is not None and np.array_equal(first, o) for o in others)
    stored = {s.batch_id: s for s in store.scores.query(MACHINE)}
    assert np.array_equal(
        stored[shuffled].contributions, stored[ordered].contributions, equal_nan=True
    )
    assert stored[wider].columns == list(schema.columns)

    strict = store.readings.add(variant(batch, columns, {"Spare2": 1.0})).batch_id
    assert score_batch(strict, store=store, models=models, extra_sensors="reject").status == (
        "rejected"
    )
    (letter,) = store.dead_letters.list()
    assert letter.reason.startswith("columns: unknown sensors ['Spare2'] for model")


def test_a_batch_missing_a_sensor_is_dead_lettered_unscored(
    store: Store,
    tracking_uri: str,
    tmp_path: Path,
    unique_prefix: str,
    make_settings: Callable[..., Settings],
) -> None:
    registry = trained(store, tracking_uri, tmp_path, unique_prefix)
    models = ModelCache(registry, ttl_s=0)
    batch = SyntheticMachine(MACHINE, seed=5, n_sensors=4).read(20).to_batch()
    lost = batch.columns[2]
    partial = variant(batch, [c for c in batch.columns if c != lost])
    batch_id = store.readings.add(partial).batch_id

    outcome = score_batch(batch_id, store=store, models=models)
    assert (outcome.status, outcome.model_version, outcome.scores) == ("rejected", 1, None)
    # redelivered: the machine's stream is past it (it was handled: dead-lettered once)
    assert score_batch(batch_id, store=store, models=models).status == "duplicate"
    assert store.scores.count(MACHINE) == 300  # the history before it, streamed on the way
    assert all(s.batch_id != batch_id for s in store.scores.query(MACHINE))
    (letter,) = store.dead_letters.list()  # once, though scored twice
    name = f"{unique_prefix}{MACHINE}"
    assert letter.reason == f"columns: missing sensors [{lost!r}] for model {name} version 1"
    assert (letter.source, letter.message_id) == ("predict", str(partial.message_id))
    assert letter.headers["missing"] == [lost] and letter.headers["model_version"] == 1
    assert parse_readings_message(letter.body) == partial.model_copy(
        update={"sent_at": parse_readings_message(letter.body).sent_at}
    )  # the stored batch again: replayable through the normal path

    app = create_app(make_settings(), store=store, registry=registry)
    with TestClient(app) as client:
        listed = client.get("/api/v1/dead-letters").json()
        assert [d["reason"] for d in listed] == [letter.reason]
        detail = client.get(f"/api/v1/dead-letters/{letter.id}").json()
        assert detail["headers"]["batch_id"] == batch_id


def stored_readings(store: Store, machine_id: str) -> int:
    """Readings stored for the machine; 0 before its first batch arrived."""
    try:
        return store.machines.get(machine_id).n_readings
    except NotFound:
        return 0


@pytest.mark.rabbitmq
@pytest.mark.slow
def test_on_rabbitmq_a_batch_missing_a_sensor_is_dead_lettered_and_a_fixed_replay_is_scored(
    make_settings: Callable[..., Settings], rabbitmq_url: str
) -> None:
    settings = make_settings(broker_url=rabbitmq_url)
    machine = SyntheticMachine("lathe-1", seed=6, n_sensors=4, warmup=10_000)
    try:
        with (
            running_pipeline(settings) as pipeline,
            PikaReadingsPublisher(rabbitmq_url, pipeline.topology) as publisher,
        ):
            store = pipeline.store
            for _ in range(6):
                publisher.publish(machine.read(50).to_batch())
            wait_for(lambda: stored_readings(store, "lathe-1") == 300, what="readings")
            job = submit_training(
                TrainRequest(machine_id="lathe-1"),
                store=store,
                dispatcher=pipeline.context.dispatcher,
            )
            wait_for(lambda: store.jobs.get(job.id).state.finished, what="train job")
            wait_for(lambda: store.scores.count("lathe-1") == 300, what="backfill")

            full = machine.read(20).to_batch()
            partial = variant(full, full.columns[1:])
            publisher.publish(partial)
            wait_for(lambda: store.dead_letters.count() == 1, what="the dead letter")
            (letter,) = store.dead_letters.list()
            assert letter.source == "predict" and letter.message_id == str(partial.message_id)
            assert letter.reason.startswith(f"columns: missing sensors [{full.columns[0]!r}]")
            assert store.scores.count("lathe-1") == 300  # no score for it

            app = create_app(
                settings,
                store=store,
                registry=pipeline.context.registry,
                dispatcher=pipeline.context.dispatcher,
            )
            with TestClient(app) as client:  # the fixed readings, as a new message
                replayed = client.post(
                    f"/api/v1/dead-letters/{letter.id}/replay",
                    json={"body": full.to_wire().decode()},
                )
                assert replayed.status_code == 202, replayed.text
            wait_for(lambda: store.scores.count("lathe-1") == 320, what="the fixed batch scored")
            assert store.dead_letters.count() == 1
    finally:
        delete_topology(rabbitmq_url, Topology(settings.broker.namespace))
