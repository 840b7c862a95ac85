"""The store's dead letters and ``<ns>.dead`` agree, on the real RabbitMQ: a dead letter in
``<ns>.dead`` keeps its message's properties and headers and says why it died and which
record it is; the record keeps the ``message_id`` and headers too; a replay marks both;
a purge (service, API) removes the copies of what it deleted -- and of what an earlier
purge could not reach -- and never a message the store does not hold."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
import pytest
from fastapi.testclient import TestClient
from kombu import Connection

from mmlw.api.app import create_app
from mmlw.messaging.dead_copy import DEAD_LETTER_ID, REASON, REPLAY_COUNT, ROUTING_KEY
from mmlw.messaging.dead_queue import DeadQueue
from mmlw.messaging.pika_publisher import PikaReadingsPublisher, pika_url
from mmlw.messaging.sink import ListSink
from mmlw.schemas.readings import ReadingsBatch
from mmlw.services.dead_letters import purge, replay
from mmlw.services.scoring import score_batch
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.consumers.ingest import IngestConsumer
from mmlw.workers.context import WorkerContext
from mmlw.workers.model_cache import ModelCache
from mmlw.workers.simulator import SyntheticMachine
from tests.integration.pipeline import delete_topology, queue_depth, wait_for
from tests.integration.test_input_schema import MACHINE, trained, variant

pytestmark = pytest.mark.rabbitmq

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
STAMP = 1_790_000_000  # an AMQP timestamp (seconds)


def batch_of(machine_id: str, seed: int) -> ReadingsBatch:
    return SyntheticMachine(machine_id, seed=seed, n_sensors=3, start=START).read(5).to_batch()


def broken(batch: ReadingsBatch) -> bytes:
    raw = json.loads(batch.to_wire())
    raw["values"][0][0] = "oops"
    return json.dumps(raw).encode()


@dataclass
class Running:
    settings: Settings
    context: WorkerContext
    consumer: IngestConsumer
    url: str

    @property
    def store(self) -> Store:
        return self.context.store

    @property
    def dead(self) -> str:
        return self.context.topology.dead_queue_name

    def dead_queue(self) -> DeadQueue:
        return DeadQueue(self.url, self.context.topology)

    def publish(self, routing_key: str, body: bytes, **properties: Any) -> None:
        """Publish raw bytes with ``properties`` to the readings exchange (pika)."""
        connection = pika.BlockingConnection(pika.URLParameters(pika_url(self.url)))
        try:
            connection.channel().basic_publish(
                self.context.topology.readings_exchange_name,
                routing_key,
                body,
                pika.BasicProperties(delivery_mode=2, **properties),
            )
        finally:
            connection.close()

    def publish_dead(self, body: bytes, **properties: Any) -> None:
        """Put a message straight into ``<ns>.dead`` (as RabbitMQ's own dead-lettering or
        an older version would have)."""
        connection = pika.BlockingConnection(pika.URLParameters(pika_url(self.url)))
        try:
            exchange = self.context.topology.dead_exchange_name
            connection.channel().basic_publish(
                exchange, "pump-1", body, pika.BasicProperties(**properties)
            )
        finally:
            connection.close()

    def dead_messages(self) -> list[tuple[Any, bytes]]:
        """(properties, body) of every message in ``<ns>.dead``, left in it."""
        connection = pika.BlockingConnection(pika.URLParameters(pika_url(self.url)))
        try:
            channel = connection.channel()
            found = []
            while True:
                method, properties, body = channel.basic_get(self.dead)
                if method is None:
                    return found
                found.append((properties, body))
        finally:
            connection.close()  # what was taken goes back


@contextmanager
def consuming(settings: Settings, url: str) -> Iterator[Running]:
    context = WorkerContext(settings, migrate=True)
    connection = Connection(url, heartbeat=0)
    with Connection(url) as declaring:  # published to before the consumer is up
        context.topology.declare(declaring.default_channel)
    consumer = IngestConsumer.for_context(connection, context)
    thread = threading.Thread(target=consumer.run, name="ingest-dlq-test", daemon=True)
    thread.start()
    try:
        yield Running(settings, context, consumer, url)
    finally:
        consumer.stop()
        thread.join(30)
        connection.release()
        context.store.close()
        delete_topology(url, context.topology)


@pytest.fixture
def running(
    make_settings: Callable[..., Settings], rabbitmq_url: str, database_url: str
) -> Iterator[Running]:
    settings = make_settings(broker_url=rabbitmq_url, database_url=database_url)
    with consuming(settings, rabbitmq_url) as running:
        yield running


def by_message_id(running: Running) -> dict[str, tuple[Any, bytes]]:
    return {p.message_id: (p, b) for p, b in running.dead_messages()}


def test_dead_letters_keep_their_properties_and_purge_and_replay_reach_the_broker(
    running: Running,
) -> None:
    store = running.store
    bad = batch_of("pump-1", 1)
    running.publish(
        "pump-1",
        broken(bad),
        message_id="dc-1",
        content_type="application/json",
        content_encoding="utf-8",
        timestamp=STAMP,
        headers={"x-trace": "abc-123", "attempt": 7},
    )
    running.publish("pump-1", b"{not json", message_id="dc-2", headers={"x-trace": "t2"})
    wait_for(lambda: store.dead_letters.count() == 2, what="two dead letters in the store")
    wait_for(lambda: queue_depth(running.url, running.dead) == 2, what="two in <ns>.dead")

    records = {d.message_id: d for d in store.dead_letters.list()}
    first = records["dc-1"]
    assert first.reason.startswith("values.0.0") and first.routing_key == "pump-1"
    assert first.headers["x-trace"] == "abc-123" and first.headers["attempt"] == 7
    stored_properties = first.headers["x-mmlw-properties"]
    assert stored_properties["content_type"] == "application/json"
    assert stored_properties["content_encoding"] == "utf-8"
    assert stored_properties["timestamp"] == STAMP
    assert records["dc-2"].headers["x-trace"] == "t2"

    copies = by_message_id(running)
    properties, body = copies["dc-1"]
    assert body == broken(bad)
    assert (properties.content_type, properties.content_encoding) == ("application/json", "utf-8")
    assert properties.timestamp == STAMP and properties.delivery_mode == 2
    headers = properties.headers
    assert (headers["x-trace"], headers["attempt"]) == ("abc-123", 7)
    assert headers[REASON] == first.reason and headers[ROUTING_KEY] == "pump-1"
    assert headers[DEAD_LETTER_ID] == first.id
    assert "x-death" not in headers  # a copy of ours, not RabbitMQ's rejection
    assert copies["dc-2"][0].headers[DEAD_LETTER_ID] == records["dc-2"].id
    assert running.consumer.stats.dead_letters == 2

    # a fixed replay marks the record and its copy
    with PikaReadingsPublisher(running.url, running.context.topology) as publisher:
        done = replay(
            first.id,
            store=store,
            publisher=publisher,
            body_override=bad.to_wire(),
            dead_queue=running.dead_queue(),
        )
    assert done.dead_letter.replay_count == 1 and done.broker is not None
    assert (done.broker.replaced, done.broker.kept, done.broker.complete) == (1, 1, True)
    wait_for(lambda: store.readings.find_id(str(bad.message_id)) is not None, what="replayed")
    copies = by_message_id(running)
    assert len(copies) == 2
    marked = copies["dc-1"][0]
    assert marked.headers[REPLAY_COUNT] == 1 and marked.headers[DEAD_LETTER_ID] == first.id
    assert marked.headers["x-trace"] == "abc-123" and marked.timestamp == STAMP

    # purging one record removes its copy only
    swept = purge(store, [first.id], dead_queue=running.dead_queue())
    assert swept.count == 1 and swept.broker is not None
    assert (swept.broker.removed, swept.broker.kept, swept.broker.complete) == (1, 1, True)
    assert set(by_message_id(running)) == {"dc-2"}


def test_a_purge_removes_the_copies_of_every_record_gone_and_keeps_the_rest(
    running: Running,
) -> None:
    store = running.store
    running.publish("pump-1", b"[1]", message_id="gone-1")
    running.publish("pump-1", b"[2]", message_id="kept-1")
    wait_for(lambda: queue_depth(running.url, running.dead) == 2, what="two in <ns>.dead")
    records = {d.message_id: d.id for d in store.dead_letters.list()}
    # a purge whose sweep could not reach the broker: the store's side is done
    away = DeadQueue("amqp://guest:guest@127.0.0.1:1//", running.context.topology)
    missed = purge(store, [records["gone-1"]], dead_queue=away)
    assert missed.count == 1 and missed.broker is not None and not missed.broker.complete
    assert queue_depth(running.url, running.dead) == 2
    # rejected by RabbitMQ itself (no id of ours), with a purged record's message_id...
    store_id = store.dead_letters.add(source="amqp", reason="r", body=b"[3]", message_id="dlx-1")
    running.publish_dead(b"[3]", message_id="dlx-1", headers={"x-death": [{"count": 1}]})
    # ...and one the store never recorded: only <ns>.dead has it
    running.publish_dead(b"[4]", message_id="unrecorded")

    # the API's purge: what this one deletes, and what the last one could not reach
    app = create_app(
        running.settings,
        store=store,
        registry=running.context.registry,
        dispatcher=running.context.dispatcher,
    )
    with TestClient(app) as client:
        response = client.post("/api/v1/dead-letters/purge", json={"ids": [store_id]})
        assert response.status_code == 200, response.text
        assert response.json() == {"purged": 1}
    assert set(by_message_id(running)) == {"kept-1", "unrecorded"}
    assert set(records) - {"gone-1"} == {d.message_id for d in store.dead_letters.list()}

    done = purge(store, everything=True, dead_queue=running.dead_queue())
    assert done.count == 1 and done.broker is not None and done.broker.removed == 1
    assert set(by_message_id(running)) == {"unrecorded"}  # never lost


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_when_the_copy_cannot_be_published_rabbitmq_dead_letters_the_original(
    running: Running,
) -> None:
    running.consumer.dead_letter.copies = DeadQueue(
        "amqp://guest:guest@127.0.0.1:1//", running.context.topology
    )
    running.publish("pump-1", b"{not json", message_id="fb-1", headers={"x-trace": "fb"})
    wait_for(lambda: queue_depth(running.url, running.dead) == 1, what="the original rejected")
    (record,) = running.store.dead_letters.list()
    assert record.message_id == "fb-1" and record.headers["x-trace"] == "fb"
    properties, body = by_message_id(running)["fb-1"]
    assert body == b"{not json" and properties.headers["x-trace"] == "fb"
    assert properties.headers["x-death"][0]["reason"] == "rejected"
    done = purge(running.store, everything=True, dead_queue=running.dead_queue())
    assert done.count == 1 and done.broker is not None and done.broker.removed == 1
    assert queue_depth(running.url, running.dead) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_unreadable_delivery_gets_a_readable_copy_that_a_purge_removes(
    running: Running,
) -> None:
    good = batch_of("ok-1", 2)
    running.publish("ok-1", b"{}", message_id=b"\xff\xfe-id", headers={"h": "v"})  # type: ignore[arg-type]
    running.publish("ok-1", good.to_wire(), message_id=str(good.message_id))
    store = running.store
    wait_for(lambda: store.readings.find_id(str(good.message_id)) is not None, what="the good")
    wait_for(lambda: queue_depth(running.url, running.dead) == 1, what="the copy")
    (record,) = store.dead_letters.list()
    assert record.reason.startswith("amqp: message_id not valid UTF-8")
    assert record.message_id == "\ufffd\ufffd-id" and record.headers["h"] == "v"
    (properties, body), *_ = running.dead_messages()
    assert body == b"{}" and properties.message_id == "\ufffd\ufffd-id"
    assert properties.headers[DEAD_LETTER_ID] == record.id
    assert properties.headers["h"] == "v" and properties.headers[REASON] == record.reason
    done = purge(store, everything=True, dead_queue=running.dead_queue())  # kombu reads it
    assert done.broker is not None and (done.broker.removed, done.broker.complete) == (1, True)
    assert queue_depth(running.url, running.dead) == 0


def test_the_store_says_which_records_a_purge_deleted(store: Store) -> None:
    ids = [
        store.dead_letters.add(source="amqp", reason="r", body=b"x", message_id=f"m-{i}")
        for i in range(3)
    ]
    assert store.dead_letters.purge_returning([ids[0], 999]) == [(ids[0], "m-0")]
    assert store.dead_letters.stored_ids([*ids, 999]) == set(ids[1:])
    assert sorted(store.dead_letters.purge_returning(everything=True)) == [
        (ids[1], "m-1"),
        (ids[2], "m-2"),
    ]
    assert (
        store.dead_letters.stored_ids(ids) == set() and store.dead_letters.stored_ids([]) == set()
    )


# --- a scoring dead letter replayed fixed -------------------------------------------------


def test_a_batch_refused_for_a_missing_sensor_and_replayed_fixed_is_stored_once_and_scored(
    store: Store, tracking_uri: str, tmp_path: Path, unique_prefix: str
) -> None:
    registry = trained(store, tracking_uri, tmp_path, unique_prefix)
    models = ModelCache(registry, ttl_s=0)
    sink = ListSink()
    for seed, same_id in ((9, False), (10, True)):  # fixed under a new id, or the same
        before = store.machines.get(MACHINE).n_readings
        full = SyntheticMachine(MACHINE, seed=seed, n_sensors=4).read(20).to_batch()
        partial = variant(full, full.columns[1:])
        if same_id:
            full = full.model_copy(update={"message_id": partial.message_id})
        stored = store.readings.add(partial).batch_id
        assert score_batch(stored, store=store, models=models).status == "rejected"
        letter = next(d for d in store.dead_letters.list() if d.headers["batch_id"] == stored)
        assert letter.source == "predict"

        done = replay(letter.id, store=store, publisher=sink, body_override=full.to_wire())
        assert done.broker is None and done.dead_letter.replay_count == 1
        assert sink.batches[-1] == full
        outcome = store.readings.add(full)  # what the ingest consumer does with it
        assert outcome.created and not outcome.reused
        assert score_batch(outcome.batch_id, store=store, models=models).status == "scored"
        assert store.machines.get(MACHINE).n_readings == before + 20  # stored once
        assert store.readings.unscored_ids(MACHINE) == []  # and scored
        assert store.readings.find_id(str(full.message_id)) == outcome.batch_id
