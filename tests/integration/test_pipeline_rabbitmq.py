"""End to end on the real RabbitMQ: pika publisher -> ingest consumer -> Celery worker
-> store, MLflow training and scoring by alias, dead letters, redelivery."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from mmlw.detectors.default import DEFAULT_DETECTOR
from mmlw.messaging.dispatch import CeleryDispatcher
from mmlw.messaging.pika_publisher import PikaReadingsPublisher
from mmlw.messaging.topology import Topology
from mmlw.registry.base import CHAMPION
from mmlw.schemas import JobState, ReadingsBatch, TrainRequest
from mmlw.services.jobs import submit_training
from mmlw.workers.simulator import SyntheticMachine
from tests.integration.pipeline import (
    Pipeline,
    delete_topology,
    queue_depth,
    running_pipeline,
    wait_for,
)

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def pipeline(make_settings, rabbitmq_url: str, database_url: str) -> Iterator[Pipeline]:  # type: ignore[no-untyped-def]
    settings = make_settings(broker_url=rabbitmq_url, database_url=database_url)
    try:
        with running_pipeline(settings) as running:
            yield running
    finally:
        delete_topology(rabbitmq_url, Topology(settings.broker.namespace))


@pytest.fixture
def publisher(pipeline: Pipeline, rabbitmq_url: str) -> Iterator[PikaReadingsPublisher]:
    with PikaReadingsPublisher(rabbitmq_url, pipeline.topology) as pub:
        yield pub


def publish_frames(pub: PikaReadingsPublisher, machine: SyntheticMachine, n: int, size: int) -> int:
    sent = 0
    while sent < n:
        frame = machine.read(min(size, n - sent))
        pub.publish(frame.to_batch())
        sent += len(frame)
    return sent


def n_readings(pipeline: Pipeline, machine_id: str) -> int:
    machines = {m.id: m for m in pipeline.store.machines.list()}
    return machines[machine_id].n_readings if machine_id in machines else 0


def test_readings_train_and_score_end_to_end(
    pipeline: Pipeline, publisher: PikaReadingsPublisher
) -> None:
    machine = SyntheticMachine("pump-1", seed=3, warmup=400, fault_every=150, fault_length=40)
    publish_frames(publisher, machine, 400, 50)
    wait_for(lambda: n_readings(pipeline, "pump-1") == 400, what="400 stored readings")

    dispatcher = CeleryDispatcher.from_broker(pipeline.settings.broker.url, pipeline.topology)
    job = submit_training(
        TrainRequest(machine_id="pump-1", last_n=400), store=pipeline.store, dispatcher=dispatcher
    )
    wait_for(lambda: pipeline.store.jobs.get(job.id).state.finished, what="train job")
    done = pipeline.store.jobs.get(job.id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.result is not None and done.result["version"] == 1
    assert done.result["aliases"] == [CHAMPION]
    registry = pipeline.context.registry
    assert registry.alias_version("pump-1", CHAMPION) == 1
    (version,) = registry.versions("pump-1")
    assert version.metrics["n_readings"] == 400
    assert version.tags["detector"] == DEFAULT_DETECTOR

    publish_frames(publisher, machine, 600, 50)
    # every reading is scored: the 400 it was trained on (queued when the model arrived,
    # streamed first, in the order they were stored) and the 600 after them
    wait_for(
        lambda: pipeline.store.scores.count("pump-1") >= 1000,
        what=lambda: f"1000 scores, have {pipeline.store.scores.count('pump-1')}",
    )
    parts = pipeline.store.scores.query("pump-1")
    assert {p.model_version for p in parts} == {1}
    flags = np.concatenate([p.flags for p in parts])
    stamps = np.concatenate([p.timestamps_us for p in parts])
    _values, labels = pipeline.store.readings.window("pump-1")
    assert labels is not None
    truth = dict(zip(labels.index.as_unit("us").asi8, labels.to_numpy(), strict=True))
    label = np.array([truth[int(t)] for t in stamps])
    new = stamps > labels.index.as_unit("us").asi8[399]  # the readings after training
    # stored, and so streamed, in time order (ingest buffers hold several of its messages)
    starts = [q.timestamps_us[0] for q in sorted(parts, key=lambda q: q.batch_id)]
    assert starts == sorted(starts)
    assert len(stamps) == 1000 and new.sum() == 600
    assert label[new].sum() > 0, "the simulated window holds injected faults"
    # on them the default detector flags most fault readings and few normal ones
    assert flags[new & (label == 1)].mean() > 0.5
    assert flags[new & (label == 0)].mean() < 0.1
    assert pipeline.consumer.stats.dead_letters == 0


def test_malformed_messages_are_dead_lettered_and_valid_ones_around_them_stored(
    pipeline: Pipeline, publisher: PikaReadingsPublisher, rabbitmq_url: str
) -> None:
    machine = SyntheticMachine("pump-2", seed=1)
    good = machine.read(10).to_batch()
    valid = json.loads(good.to_wire())
    bad_bodies = {
        "body": b"{this is not json",
        "schema": json.dumps({**valid, "schema": "other/9"}).encode(),
        "colour": json.dumps({**valid, "colour": "red"}).encode(),
        "values.3.2": json.dumps(valid)
        .encode()
        .replace(json.dumps(valid["values"][3][2]).encode(), b"NaN", 1),
    }
    publisher.publish(good)
    for body in bad_bodies.values():
        publisher.publish_raw("pump-2", body, message_id=str(uuid.uuid4()))
    after = machine.read(10).to_batch()
    publisher.publish(after)

    wait_for(lambda: n_readings(pipeline, "pump-2") == 20, what="both valid batches stored")
    wait_for(lambda: pipeline.store.dead_letters.count() == 4, what="4 dead letters")
    reasons = [d.reason for d in pipeline.store.dead_letters.list()]
    for field in bad_bodies:
        assert any(field in reason for reason in reasons), (field, reasons)
    bodies = {d.body for d in pipeline.store.dead_letters.list()}
    assert bodies == set(bad_bodies.values())
    wait_for(
        lambda: queue_depth(rabbitmq_url, pipeline.topology.dead_queue_name) == 4,
        what="4 messages in the RabbitMQ dead-letter queue",
    )
    # the consumer is still alive
    publisher.publish(machine.read(5).to_batch())
    wait_for(lambda: n_readings(pipeline, "pump-2") == 25, what="a batch after the bad ones")


def test_a_redelivered_batch_is_stored_and_scored_once(
    pipeline: Pipeline, publisher: PikaReadingsPublisher
) -> None:
    machine = SyntheticMachine("pump-3", seed=2)
    publish_frames(publisher, machine, 200, 50)
    wait_for(lambda: n_readings(pipeline, "pump-3") == 200, what="200 readings")
    dispatcher = CeleryDispatcher.from_broker(pipeline.settings.broker.url, pipeline.topology)
    job = submit_training(
        TrainRequest(machine_id="pump-3"), store=pipeline.store, dispatcher=dispatcher
    )
    wait_for(lambda: pipeline.store.jobs.get(job.id).state.finished, what="train job")
    assert pipeline.store.jobs.get(job.id).state is JobState.SUCCEEDED
    batch: ReadingsBatch = machine.read(30).to_batch()
    for _ in range(3):
        publisher.publish(batch)
    wait_for(lambda: pipeline.consumer.stats.duplicates == 2, what="two duplicates seen")
    batch_id = pipeline.store.readings.find_id(str(batch.message_id))
    assert batch_id is not None

    def scored_parts() -> list:  # type: ignore[type-arg]
        return [p for p in pipeline.store.scores.query("pump-3") if p.batch_id == batch_id]

    wait_for(
        lambda: len(scored_parts()) == 1,
        what=lambda: (
            f"the batch scored; scores: {pipeline.store.scores.count('pump-3')}, "
            f"unscored: {pipeline.store.readings.unscored_ids('pump-3')}, batch {batch_id}"
        ),
    )
    dispatcher.predict(batch_id)  # and once more straight to the predict queue
    sentinel = machine.read(10).to_batch()
    publisher.publish(sentinel)
    sentinel_id = lambda: pipeline.store.readings.find_id(str(sentinel.message_id))  # noqa: E731
    wait_for(
        lambda: any(p.batch_id == sentinel_id() for p in pipeline.store.scores.query("pump-3")),
        what="a later batch scored",
    )
    assert n_readings(pipeline, "pump-3") == 240
    assert pipeline.consumer.stats.batches == 6
    (part,) = scored_parts()
    assert len(part.scores) == 30


def test_publish_readings_batches_and_everything_arrives(
    pipeline: Pipeline, publisher: PikaReadingsPublisher
) -> None:
    frame = SyntheticMachine("pump-4", seed=4).read(1234)
    batches = publisher.publish_readings(
        "pump-4", frame.columns, frame.timestamps, frame.values.tolist(), batch_size=500
    )
    assert batches == 3
    wait_for(lambda: n_readings(pipeline, "pump-4") == 1234, what="1234 readings")
    values, _ = pipeline.store.readings.window("pump-4")
    np.testing.assert_array_equal(values.to_numpy(), frame.values)
