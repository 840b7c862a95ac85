"""Poison messages against the real ingest consumer on the real RabbitMQ: one message can
never stop ingestion.

Every hostile message (nesting 100k deep, bodies over the size limit, one of them a real
20 MB one, times and offsets across year 1 and 9999, a reused ``message_id``, binary
garbage, non-JSON, JSON that is not an object) ends as a dead letter with its reason,
in the store and in ``<ns>.dead``; the valid batches published between them are stored;
the consumer's thread lives on and nothing is requeued. So do deliveries the AMQP client
cannot read (a routing key or property that is not UTF-8). A batch the store refuses is
dead-lettered alone and the rest of its buffer stored; one that keeps failing with the
store up is dead-lettered after ``max_deliveries``; while the store is down nothing is
dead-lettered and nothing lost.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pika
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kombu import Connection

from mmlw.messaging.pika_publisher import PikaReadingsPublisher, pika_url
from mmlw.schemas.readings import ReadingsBatch
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.consumers.ingest import IngestConsumer
from mmlw.workers.context import WorkerContext
from mmlw.workers.simulator import SyntheticMachine
from tests.integration.pipeline import delete_topology, queue_depth, wait_for
from tests.integration.tcp_proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq

LIMIT = 256 * 1024  # the tests' max_message_bytes
START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
DEEP = 100_000
REUSED_ID = "0b5e7c1a-9d3f-4c6e-8a21-7f00000000aa"


def batch_of(machine_id: str, seed: int, n: int = 5) -> ReadingsBatch:
    return SyntheticMachine(machine_id, seed=seed, n_sensors=3, start=START).read(n).to_batch()


def changed(**changes: Any) -> bytes:
    """A valid message of ``pump-1`` (a fresh message id) with ``changes``."""
    raw = json.loads(batch_of("pump-1", 1).to_wire())
    return json.dumps({**raw, "message_id": str(uuid.uuid4()), **changes}).encode()


def twenty_megabytes() -> bytes:
    """A real readings message of about 20 MB: 100,000 readings of 8 sensors."""
    n = 100_000
    times = np.datetime64("2026-11-22T00:00:00") + np.arange(n).astype("timedelta64[s]")
    return orjson.dumps(
        {
            "schema": "mmlw.readings/1",
            "message_id": str(uuid.uuid4()),
            "machine_id": "pump-1",
            "columns": [f"s{i}" for i in range(8)],
            "timestamps": [f"{t}Z" for t in times.astype(str)],
            "values": np.random.default_rng(1).normal(size=(n, 8)).tolist(),
        }
    )


def hostile() -> list[tuple[str, bytes, str]]:
    """(routing key, body, what its dead letter's reason says), in publishing order."""
    deep = b"[" * DEEP + b"]" * DEEP
    return [
        ("pump-1", deep, "body: JSON nested more than 32 levels deep"),
        ("pump-1", b'{"schema": "mmlw.readings/1", "values": ' + deep + b"}", "nested more"),
        ("pump-1", b"{" * DEEP, "nested more"),
        ("pump-1", changed() + b" " * LIMIT, f"exceed the limit {LIMIT}"),
        ("pump-1", twenty_megabytes(), f"exceed the limit {LIMIT}"),
        ("pump-1", changed(timestamps=["0001-01-01T00:00:00Z"] * 5), "timestamps.0: "),
        ("pump-1", changed(timestamps=["0001-01-01T00:00:00+23:59"] * 5), "timestamps.0: "),
        ("pump-1", changed(timestamps=["9999-12-31T23:59:59Z"] * 5), "timestamps.0: "),
        ("pump-1", changed(timestamps=["9999-12-31T23:59:59-23:59"] * 5), "timestamps.0: "),
        ("pump-1", changed(sent_at="0001-01-01T00:00:00+23:59"), "sent_at: "),
        ("pump-1", changed(sent_at="9999-12-31T23:59:59-23:59"), "sent_at: "),
        ("pump-1", changed(sent_at="9999-12-31T23:59:59Z"), "sent_at: "),
        ("press-2", _with_id(batch_of("press-2", 2), REUSED_ID), "message_id reused with diff"),
        ("pump-1", _with_id(batch_of("pump-1", 3), REUSED_ID), "message_id reused with diff"),
        ("pump-1", bytes(range(256)) * 4, "body: not valid UTF-8"),
        ("pump-1", b"{not json", "body: not valid JSON"),
        ("pump-1", b"", "body: not valid JSON"),
        ("pump-1", b"[1, 2, 3]", "body: expected a JSON object, got list"),
        ("pump-1", b"42", "body: expected a JSON object, got int"),
        ("pump-1", changed(**{"\x00": 1}), "\\x00: Extra inputs are not permitted"),
        ("pump-1", changed().replace(b"[[", b"[[" + b"9" * 5000 + b", ", 1), "not valid JSON"),
    ]


def _with_id(batch: ReadingsBatch, message_id: str) -> bytes:
    return batch.model_copy(update={"message_id": uuid.UUID(message_id)}).to_wire()


garbage = st.one_of(
    st.binary(min_size=1, max_size=200),
    st.text(max_size=60).map(lambda t: ("{" + t).encode("utf-8", "surrogatepass")),
    st.recursive(
        st.none() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3),
        max_leaves=6,
    ).map(lambda v: json.dumps(v).encode()),
)


@dataclass
class Running:
    consumer: IngestConsumer
    thread: threading.Thread
    store: Store
    publisher: PikaReadingsPublisher


@contextmanager
def consuming(
    settings_: Settings, rabbitmq_url: str, **options: Any
) -> Iterator[tuple[Running, Callable[[], None]]]:
    """The ingest consumer in a thread of its own (``options`` for the constructor; none:
    built from the settings, as ``mmlw ingest`` does), a publisher, and a way to start
    the consumer (a backlog can be published first)."""
    context = WorkerContext(settings_, migrate=True)
    connection = Connection(rabbitmq_url, heartbeat=0)
    consumer = (
        IngestConsumer(
            connection,
            context.topology,
            store=context.store,
            dispatcher=context.dispatcher,
            **options,
        )
        if options
        else IngestConsumer.for_context(connection, context)
    )
    thread = threading.Thread(target=consumer.run, name="ingest-under-test", daemon=True)
    try:
        with PikaReadingsPublisher(rabbitmq_url, context.topology) as publisher:
            publisher.connect()
            yield Running(consumer, thread, context.store, publisher), thread.start
    finally:
        consumer.stop()
        if thread.is_alive():
            thread.join(30)
        connection.release()
        context.store.close()
        delete_topology(rabbitmq_url, context.topology)


def stored(store: Store, batches: list[ReadingsBatch]) -> bool:
    return all(store.readings.find_id(str(b.message_id)) is not None for b in batches)


def test_a_reused_message_id_is_not_a_duplicate(store: Store) -> None:
    first = batch_of("pump-1", 1)
    again = ReadingsBatch.model_validate_json(first.to_wire())
    other_machine = batch_of("press-2", 2).model_copy(update={"message_id": first.message_id})
    other_values = batch_of("pump-1", 3).model_copy(update={"message_id": first.message_id})

    (created,) = store.readings.add_many([first])
    assert created.created and not created.reused
    outcomes = store.readings.add_many([other_machine, other_values, again, batch_of("a-1", 4)])
    assert [(o.created, o.reused) for o in outcomes] == [
        (False, True),
        (False, True),
        (False, False),  # the stored content again: a duplicate
        (True, False),
    ]
    assert {o.batch_id for o in outcomes[:3]} == {created.batch_id}
    # within one call: the first occurrence is stored, other content under its id is not
    late = batch_of("b-1", 5)
    clash = batch_of("c-1", 6).model_copy(update={"message_id": late.message_id})
    outcomes = store.readings.add_many([late, clash, late])
    assert [(o.created, o.reused) for o in outcomes] == [
        (True, False),
        (False, True),
        (False, False),
    ]
    # a machine only a reused message_id named is not a machine
    assert sorted(m.id for m in store.machines.list()) == ["a-1", "b-1", "pump-1"]
    assert store.readings.get(created.batch_id).values.tolist() == first.values


@settings(
    max_examples=1,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    phases=[Phase.generate],  # no shrinking: each run takes seconds
)
@given(noise=st.lists(garbage, min_size=12, max_size=12))
def test_hostile_messages_are_dead_lettered_and_every_valid_batch_is_stored(
    make_settings: Callable[..., Settings],
    rabbitmq_url: str,
    database_url: str,
    noise: list[bytes],
) -> None:
    settings_ = make_settings(broker_url=rabbitmq_url, database_url=database_url)
    broker = settings_.broker.model_copy(update={"max_message_bytes": LIMIT})
    settings_ = settings_.model_copy(update={"broker": broker})
    expected = hostile() + [("pump-1", body, "") for body in noise]
    original = batch_of("pump-1", 7).model_copy(update={"message_id": uuid.UUID(REUSED_ID)})
    valid = [original] + [batch_of(f"ok-{i % 3}", 100 + i) for i in range(len(expected))]
    with consuming(settings_, rabbitmq_url) as (running, start):
        start()
        running.publisher.publish(original)
        for i, (routing_key, body, _) in enumerate(expected):
            running.publisher.publish_raw(routing_key, body, message_id=f"hostile-{i}")
            running.publisher.publish(valid[i + 1])
        running.publisher.publish(original)  # a true duplicate: stored once, no dead letter
        store = running.store
        wait_for(
            lambda: store.dead_letters.count() >= len(expected) and stored(store, valid),
            timeout_s=45,
            what=lambda: (
                f"{len(expected)} dead letters (have {store.dead_letters.count()}) "
                f"and {len(valid)} batches stored (alive: {running.thread.is_alive()})"
            ),
        )
        letters = {d.message_id: d for d in store.dead_letters.list(limit=1000)}
        assert len(letters) == len(expected)
        for i, (_, body, says) in enumerate(expected):
            letter = letters[f"hostile-{i}"]
            assert letter.reason and says in letter.reason, (i, letter.reason)
            assert "\x00" not in letter.reason
            kept = body[: settings_.broker.dead_letter_body_limit]  # and the size of the whole
            assert (letter.body, letter.body_size) == (kept, len(body))
        wait_for(
            lambda: (
                queue_depth(rabbitmq_url, settings_.broker.namespace + ".dead") == len(expected)
            ),
            what="every hostile message in <ns>.dead",
        )
        assert running.thread.is_alive()
        stats = running.consumer.stats
        assert (stats.requeued, stats.decode_errors) == (0, 0)
        wait_for(lambda: stats.duplicates == 1, what="the duplicate taken as one")
        assert store.readings.get(store.readings.find_id(REUSED_ID) or 0).machine_id == "pump-1"
        last = batch_of("pump-1", 999)  # and it keeps consuming
        running.publisher.publish(last)
        wait_for(lambda: stored(store, [last]), what="a batch after all that")
        assert running.thread.is_alive()


def _backlog(running: Running, batches: list[ReadingsBatch]) -> None:
    for batch in batches:
        running.publisher.publish(batch)


def test_a_batch_the_store_refuses_is_dead_lettered_alone_and_its_buffer_stored(
    make_settings: Callable[..., Settings], rabbitmq_url: str
) -> None:
    settings_ = make_settings(broker_url=rabbitmq_url)
    good = [batch_of(f"ok-{i % 2}", i) for i in range(8)]
    bad = batch_of("bad-1", 50)
    options = {"batch_messages": 20, "batch_idle_s": 1.0, "batch_delay_s": 1.0}
    with consuming(settings_, rabbitmq_url, **options) as (running, start):
        with running.store.database.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "CREATE TRIGGER refuse_bad BEFORE INSERT ON reading_batches "
                    "WHEN NEW.machine_id = 'bad-1' "
                    "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                )
            )
        _backlog(running, [*good[:4], bad, *good[4:]])  # one buffer
        start()
        wait_for(lambda: stored(running.store, good), what="the good batches of the buffer")
        wait_for(lambda: running.store.dead_letters.count() == 1, what="the refused one")
        (letter,) = running.store.dead_letters.list()
        assert letter.reason.startswith("store: refused the batch (IntegrityError")
        assert "refused by the test" in letter.reason
        assert letter.body == bad.to_wire()
        assert running.store.readings.find_id(str(bad.message_id)) is None
        assert running.consumer.stats.requeued == 0
        assert running.thread.is_alive()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_batch_that_keeps_failing_is_dead_lettered_after_max_deliveries(
    make_settings: Callable[..., Settings], rabbitmq_url: str, database_url: str
) -> None:
    settings_ = make_settings(broker_url=rabbitmq_url, database_url=database_url)
    good = [batch_of(f"ok-{i % 2}", i) for i in range(6)]
    stuck = batch_of("stuck-1", 60)
    options = {"max_deliveries": 3, "requeue_delay_s": 0.05, "batch_idle_s": 0.3}
    with consuming(settings_, rabbitmq_url, **options) as (running, start):
        with running.store.database.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "CREATE FUNCTION stall_stuck() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.machine_id = 'stuck-1' THEN RAISE EXCEPTION 'try again later' "
                    "USING ERRCODE = '40P01'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                sa.text(
                    "CREATE TRIGGER stall_stuck BEFORE INSERT ON reading_batches "
                    "FOR EACH ROW EXECUTE FUNCTION stall_stuck()"
                )
            )
        _backlog(running, [*good[:3], stuck, *good[3:]])
        start()
        wait_for(lambda: running.store.dead_letters.count() == 1, what="the stuck one given up")
        (letter,) = running.store.dead_letters.list()
        assert letter.reason.startswith("store: not stored after 3 attempts (OperationalError")
        assert "try again later" in letter.reason
        wait_for(lambda: stored(running.store, good), what="every other batch")
        assert running.consumer.stats.requeued == 2  # delivered 3 times in all
        assert running.thread.is_alive()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_while_the_store_is_down_nothing_is_dead_lettered_or_lost(
    make_settings: Callable[..., Settings], rabbitmq_url: str, database_url: str
) -> None:
    Store.open(database_url).close()  # migrated, through the direct connection
    target = sa.make_url(database_url)
    with TcpProxy((target.host or "127.0.0.1", target.port or 5432)) as proxy:
        via_proxy = target.set(port=proxy.port).render_as_string(hide_password=False)
        settings_ = make_settings(broker_url=rabbitmq_url, database_url=via_proxy)
        options = {"max_deliveries": 2, "requeue_delay_s": 0.05}
        with consuming(settings_, rabbitmq_url, **options) as (running, start):
            start()
            first = batch_of("ok-1", 1)
            running.publisher.publish(first)
            wait_for(lambda: stored(running.store, [first]), what="a batch before the outage")
            proxy.cut()
            later = [batch_of(f"ok-{i % 2}", 10 + i) for i in range(4)]
            _backlog(running, later)
            running.publisher.publish_raw("ok-1", b"[1, 2]", message_id="hostile")
            wait_for(
                lambda: running.consumer.stats.requeued >= 20,  # far past max_deliveries
                what="messages requeued while the store is down",
            )
            assert running.consumer.stats.dead_letters == 0
            proxy.restore()
            store = running.store
            wait_for(lambda: stored(store, later), what="every batch after the outage")
            wait_for(lambda: store.dead_letters.count() == 1, what="the hostile one recorded")
            assert store.dead_letters.list()[0].message_id == "hostile"
            assert running.thread.is_alive()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_connection_lost_while_recording_a_dead_letter_is_tried_again(
    make_settings: Callable[..., Settings], rabbitmq_url: str, database_url: str
) -> None:
    """The store comes back while the first try fails (PostgreSQL ends the session in
    the middle of the insert, once): the dead letter is recorded, not only copied."""
    settings_ = make_settings(broker_url=rabbitmq_url, database_url=database_url)
    with consuming(settings_, rabbitmq_url, requeue_delay_s=0.05) as (running, start):
        with running.store.database.engine.begin() as connection:
            connection.execute(sa.text("CREATE SEQUENCE dead_letter_inserts"))
            connection.execute(
                sa.text(
                    "CREATE FUNCTION drop_first() RETURNS trigger AS $$ BEGIN "
                    "IF nextval('dead_letter_inserts') = 1 THEN "
                    "PERFORM pg_terminate_backend(pg_backend_pid()); END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            connection.execute(
                sa.text(
                    "CREATE TRIGGER drop_first BEFORE INSERT ON dead_letters "
                    "FOR EACH ROW EXECUTE FUNCTION drop_first()"
                )
            )
        start()
        running.publisher.publish_raw("ok-1", b"[1, 2]", message_id="hostile")
        store = running.store
        wait_for(lambda: store.dead_letters.count() == 1, what="the hostile one recorded")
        assert store.dead_letters.list()[0].message_id == "hostile"
        assert running.consumer.stats.requeued == 0  # the store answered: tried at once
        with store.database.engine.connect() as connection:
            tries = connection.execute(sa.text("SELECT last_value FROM dead_letter_inserts"))
            assert tries.scalar_one() == 2


def test_deliveries_the_amqp_client_cannot_read_are_dead_lettered(
    make_settings: Callable[..., Settings], rabbitmq_url: str
) -> None:
    settings_ = make_settings(broker_url=rabbitmq_url)
    good = [batch_of(f"ok-{i % 2}", i) for i in range(4)]
    with consuming(settings_, rabbitmq_url) as (running, start):
        start()
        exchange = settings_.broker.namespace + ".readings"
        channel = pika.BlockingConnection(pika.URLParameters(pika_url(rabbitmq_url))).channel()
        try:
            running.publisher.publish(good[0])
            channel.basic_publish(
                exchange, "ok-1", b"{}", pika.BasicProperties(message_id=b"\xff\xfe-id")
            )
            running.publisher.publish(good[1])
            channel.basic_publish(exchange, b"\xffkey", good[2].to_wire())
            channel.basic_publish(
                exchange, "ok-1", b"[]", pika.BasicProperties(content_type=b"\xc3(")
            )
            running.publisher.publish(good[3])
        finally:
            channel.connection.close()
        store = running.store
        wait_for(lambda: stored(store, good[:2] + good[3:]), what="the readable batches")
        wait_for(lambda: store.dead_letters.count() == 3, what="three unreadable ones")
        reasons = sorted(d.reason for d in store.dead_letters.list())
        assert reasons == [
            "amqp: content_type not valid UTF-8 (unreadable for the consumer)",
            "amqp: message_id not valid UTF-8 (unreadable for the consumer)",
            "amqp: routing_key not valid UTF-8 (unreadable for the consumer)",
        ]
        assert store.readings.find_id(str(good[2].message_id)) is None
        wait_for(
            lambda: queue_depth(rabbitmq_url, settings_.broker.namespace + ".dead") == 3,
            what="the three in <ns>.dead",
        )
        assert running.thread.is_alive()
