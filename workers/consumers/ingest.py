"""The ingest consumer: validate -> store -> enqueue predict -> ack.

A message is acknowledged only after its readings are stored and its predict work is
enqueued. A message that breaks the contract is recorded as a dead letter (reason and
raw body) and rejected without requeue, which on RabbitMQ routes it to ``<ns>.dead``.
If the store or broker fails, the message is requeued, never dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection, Consumer
from kombu.mixins import ConsumerMixin
from kombu.transport.base import Message

from backend.errors import InvalidMessage
from backend.messaging.dispatch import Dispatcher
from backend.messaging.topology import Topology
from backend.schemas.readings import ReadingsBatch, parse_readings_message
from backend.store import Store
from workers.context import WorkerContext

__all__ = ["IngestConsumer", "IngestStats", "ingest_message"]

log = logging.getLogger(__name__)


@dataclass
class IngestStats:
    batches: int = 0
    readings: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    requeued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


def ingest_message(
    body: bytes,
    *,
    store: Store,
    dispatcher: Dispatcher,
    max_readings: int,
    source: str = "amqp",
    routing_key: str | None = None,
    message_id: str | None = None,
) -> tuple[ReadingsBatch | None, bool]:
    """Handle one message body. Returns (batch, created); (None, False) if dead-lettered.

    Raises whatever the store or dispatcher raise: the caller must then requeue.
    """
    try:
        batch = parse_readings_message(body, max_readings)
        if routing_key and routing_key != batch.machine_id:
            raise InvalidMessage(
                f"machine_id: {batch.machine_id!r} does not match routing key {routing_key!r}"
            )
    except InvalidMessage as exc:
        store.dead_letters.add(
            source=source,
            reason=exc.reason,
            body=bytes(body),
            routing_key=routing_key,
            message_id=message_id,
        )
        log.warning("dead-lettered message %s: %s", message_id, exc.reason)
        return None, False
    outcome = store.readings.add(batch)
    dispatcher.predict(outcome.batch_id)
    return batch, outcome.created


class IngestConsumer(ConsumerMixin):
    """Consumes ``<ns>.ingest`` until :meth:`stop`; one instance per thread or process."""

    def __init__(
        self,
        connection: Connection,
        topology: Topology,
        *,
        store: Store,
        dispatcher: Dispatcher,
        max_readings: int = 10_000,
        prefetch: int = 32,
        requeue_delay_s: float = 1.0,
        on_batch: Callable[[ReadingsBatch], None] | None = None,
    ) -> None:
        self.connection = connection
        self.topology = topology
        self.store = store
        self.dispatcher = dispatcher
        self.max_readings = max_readings
        self.prefetch = prefetch
        self.requeue_delay_s = requeue_delay_s
        self.on_batch = on_batch
        self.stats = IngestStats()
        self._stopping = threading.Event()

    def get_consumers(self, consumer_cls: Callable[..., Consumer], channel: Any) -> list[Consumer]:
        self.topology.declare(channel)
        return [
            consumer_cls(
                queues=[self.topology.ingest_queue()],
                on_message=self.on_message,
                prefetch_count=self.prefetch,
            )
        ]

    def on_message(self, message: Message) -> None:
        properties = message.properties or {}
        routing_key = (message.delivery_info or {}).get("routing_key")
        message_id = properties.get("message_id")
        try:
            batch, created = ingest_message(
                message.body,
                store=self.store,
                dispatcher=self.dispatcher,
                max_readings=self.max_readings,
                routing_key=routing_key,
                message_id=message_id,
            )
        except Exception:
            log.exception("ingest failed for message %s; requeueing", message_id)
            self.stats.add(requeued=1)
            self._stopping.wait(self.requeue_delay_s)
            message.requeue()
            return
        if batch is None:
            self.stats.add(dead_letters=1)
            message.reject(requeue=False)
            return
        message.ack()
        if created:
            self.stats.add(batches=1, readings=len(batch))
            if self.on_batch is not None:
                self.on_batch(batch)
        else:
            self.stats.add(duplicates=1)

    def stop(self) -> None:
        self._stopping.set()
        self.should_stop = True

    @classmethod
    def for_context(
        cls, connection: Connection, context: WorkerContext, prefetch: int = 32
    ) -> IngestConsumer:
        """A consumer wired to a worker context's store, dispatcher and settings."""
        return cls(
            connection,
            context.topology,
            store=context.store,
            dispatcher=context.dispatcher,
            max_readings=context.settings.broker.max_batch_readings,
            prefetch=prefetch,
        )
