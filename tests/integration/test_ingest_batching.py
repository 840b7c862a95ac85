"""How the ingest consumer cuts a backlog into buffers (real RabbitMQ, real SQLite store).

The consumer's own clock is replaced by one that advances only while a message is
decoded (1/8 s each, exact in binary), so what counts towards the batch delay is exact and
the buffers are known in advance: decoding never counts as waiting, and no message is
held longer than four batch delays. Real waits (the idle flush, and waiting for a message
that is already in the socket) are far below the limits: 30 s and a 0.5 s delay.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu import Connection

from mmlw.messaging.pika_publisher import PikaReadingsPublisher
from mmlw.messaging.topology import Topology
from mmlw.schemas import ReadingsBatch
from mmlw.store import Store
from mmlw.workers.consumers import ingest
from mmlw.workers.consumers.ingest import IngestConsumer
from mmlw.workers.simulator import SyntheticMachine
from tests.integration.dispatchers import Jobs
from tests.integration.pipeline import delete_topology

pytestmark = pytest.mark.rabbitmq

DECODE_S = 0.125
DELAY_S = 0.5


class _DecodeClock:
    """``time`` for the ingest module: only decoding a message moves it."""

    def __init__(self) -> None:
        self.now = 1024.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def topology(rabbitmq_url: str) -> Iterator[Topology]:
    topology = Topology(f"t{uuid.uuid4().hex[:10]}")
    yield topology
    delete_topology(rabbitmq_url, topology)


def _backlog(rabbitmq_url: str, topology: Topology, messages: int) -> None:
    machine = SyntheticMachine("press-1", seed=3, warmup=messages * 10)
    with PikaReadingsPublisher(rabbitmq_url, topology) as publisher:
        for _ in range(messages):
            batch: ReadingsBatch = machine.read(10).to_batch()
            publisher.publish(batch)


def _buffers(
    rabbitmq_url: str,
    topology: Topology,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    messages: int,
    **limits: Any,
) -> list[int]:
    """Sizes of the buffers the consumer writes for a backlog of ``messages``."""
    _backlog(rabbitmq_url, topology, messages)
    clock = _DecodeClock()
    decode: Callable[..., Any] = ingest.decode_message

    def slow_decode(*args: Any, **kwargs: Any) -> Any:
        clock.now += DECODE_S
        return decode(*args, **kwargs)

    monkeypatch.setattr(ingest, "time", clock)
    monkeypatch.setattr(ingest, "decode_message", slow_decode)
    sizes: list[int] = []
    add_many = store.readings.add_many

    def recording(batches: list[Any]) -> Any:
        sizes.append(len(batches))
        return add_many(batches)

    monkeypatch.setattr(store.readings, "add_many", recording)
    connection = Connection(rabbitmq_url, heartbeat=0)
    consumer = IngestConsumer(
        connection,
        topology,
        store=store,
        dispatcher=Jobs(),
        batch_readings=10**6,
        batch_delay_s=DELAY_S,
        batch_idle_s=30.0,  # never, in these tests
        **limits,
    )
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while consumer.stats.batches < messages:
            assert time.monotonic() < deadline, f"stored {consumer.stats.batches} of {messages}"
            time.sleep(0.02)
    finally:
        consumer.stop()
        thread.join(30)
        connection.release()
    return sizes


def test_behind_a_backlog_buffers_fill_to_their_size_limit(
    rabbitmq_url: str, topology: Topology, sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 15 messages take 1.875 s to decode, almost four batch delays: counted as waiting,
    # that would cut a buffer every 4 messages
    sizes = _buffers(rabbitmq_url, topology, sqlite_store, monkeypatch, 45, batch_messages=15)
    assert sizes == [15, 15, 15]


def test_no_message_is_held_longer_than_four_batch_delays(
    rabbitmq_url: str, topology: Topology, sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a buffer's first message is held while 16 more are decoded (2 s), then written
    sizes = _buffers(rabbitmq_url, topology, sqlite_store, monkeypatch, 34, batch_messages=100)
    assert sizes == [17, 17]
