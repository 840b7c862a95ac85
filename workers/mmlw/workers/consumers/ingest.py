"""The ingest consumer: validate -> store -> send to scoring -> ack, in micro-batches.

Valid messages are buffered (:mod:`~mmlw.workers.consumers.batch`) and written together
in one transaction, in a writer thread while the consumer receives and decodes the next
buffer; their scoring messages are sent (to the scorer of each machine's partition) and
the messages acked only once the buffer is stored
(:mod:`~mmlw.workers.consumers.writer`), so nothing is lost on a crash. A buffer is
written when it holds ``batch_messages`` messages or ``batch_readings`` readings, when
no further message arrives within ``batch_idle_s``, or when it has waited
``batch_delay_s`` for more messages, whichever comes first (settings
``MMLW_BROKER__INGEST_IDLE_MS``, 15, and ``..._BATCH_DELAY_MS``, 50): under load buffers
fill up, and a lone message waits at most ``batch_idle_s``. At 100 small messages a
second that groups about five of them per transaction and scoring message, which is what
lets one scorer keep up (bench/RESULTS.md).

Only waiting counts towards ``batch_delay_s``, not the time spent decoding messages that
were already there: behind a backlog (after an outage, in a burst) the buffer fills to
its size limits, so the consumer catches up in large transactions and tasks instead of
writing whatever it decoded in 50 ms. No message is held longer than
``4 * batch_delay_s`` either way.

Backpressure: with ``predict_backlog_limit``, the consumer stops taking messages while
the scoring queues ``<ns>.score.<k>`` hold more messages than that in all, and resumes
below half of it
(:mod:`~mmlw.workers.consumers.backpressure`).

One message never stops ingestion. A message that breaks the contract -- or that fails to
decode in any other way, or whose ``message_id`` is stored already for other content --
is dead-lettered on its own, at once (:mod:`~mmlw.workers.consumers.dead_letter`). A
delivery the AMQP client cannot read at all is found with pika and dead-lettered the same
way (:mod:`~mmlw.workers.consumers.unreadable`).

The loop is built on kombu's public API only -- ``Connection.ensure_connection``,
``kombu.Consumer`` with ``on_message``, ``Connection.drain_events(timeout=...)`` and
``heartbeat_check`` -- not on ``ConsumerMixin``'s internals, whose consume loop this
consumer needs to shape (how long to wait depends on the buffer).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from kombu import Connection, Consumer
from kombu.message import Message

from mmlw.errors import InvalidMessage
from mmlw.messaging.broker_check import BrokerWaitLog
from mmlw.messaging.dead_queue import DeadQueue
from mmlw.messaging.dispatch import Dispatcher
from mmlw.messaging.topology import Topology
from mmlw.schemas.readings import MAX_MESSAGE_BYTES
from mmlw.schemas.readings_arrays import ReadingsArrays
from mmlw.store import Store
from mmlw.workers.consumers.backpressure import Backpressure
from mmlw.workers.consumers.batch import Buffer, Pending
from mmlw.workers.consumers.dead_letter import DeadLetters
from mmlw.workers.consumers.decode import decode_message, delivery_ids, describe, relax_gc
from mmlw.workers.consumers.requeue import Requeue
from mmlw.workers.consumers.stats import IngestStats
from mmlw.workers.consumers.unreadable import Quarantine, UnreadableDelivery, guard_frames
from mmlw.workers.consumers.writer import BufferWriter
from mmlw.workers.context import WorkerContext

__all__ = ["IngestConsumer"]

log = logging.getLogger(__name__)

_MAX_HOLD = 4  # a buffered message is written within this many batch delays in any case
_SETTLE_POLL_S = 0.002  # how often the consumer looks whether a write in flight is done
_IDLE_WAIT_S = 1.0  # how long one wait for a message lasts with nothing buffered
_RESTART_DELAY_S = 1.0  # between a lost connection and the next attempt to connect


class _Stopped(Exception):
    """:meth:`IngestConsumer.stop` was called while waiting for the broker."""


class IngestConsumer:
    """Consumes ``<ns>.ingest`` until :meth:`stop`; one instance per thread or process.

    ``connection`` is a template: :meth:`run` connects clones of it, again after every
    loss. ``prefetch`` bounds the unacknowledged messages the broker hands over, so it
    should be at least ``batch_messages``.
    """

    def __init__(
        self,
        connection: Connection,
        topology: Topology,
        *,
        store: Store,
        dispatcher: Dispatcher,
        max_readings: int = 10_000,
        max_bytes: int | None = MAX_MESSAGE_BYTES,
        max_deliveries: int = 5,
        prefetch: int = 256,
        batch_messages: int = 256,
        batch_readings: int = 100_000,
        batch_delay_s: float = 0.05,
        batch_idle_s: float = 0.015,
        requeue_delay_s: float = 1.0,
        predict_backlog_limit: int | None = None,
        backlog_check_s: float = 0.25,
        predict_batches_per_task: int = 64,
        on_batch: Callable[[ReadingsArrays], None] | None = None,
    ) -> None:
        self.connection = connection
        self.topology = topology
        self.store = store
        self.max_readings = max_readings
        self.max_bytes = max_bytes
        self.prefetch = prefetch
        self.batch_idle_s = batch_idle_s
        self.backlog_check_s = backlog_check_s
        self.stats = IngestStats()
        self._stopping = threading.Event()
        self.buffer = Buffer(
            max_messages=batch_messages,
            max_readings=batch_readings,
            delay_s=batch_delay_s,
            max_hold_s=_MAX_HOLD * batch_delay_s,
        )
        self.requeue = requeue = Requeue(self.stats, requeue_delay_s, self._stopping)
        copies = DeadQueue(connection.as_uri(include_password=True), topology)
        self.dead_letter = DeadLetters(
            store, self.stats, requeue, copies=copies, queue=topology.ingest_queue_name
        )
        self.backpressure = Backpressure(
            topology.score_queues(),
            predict_backlog_limit,
            check_s=backlog_check_s,
            stats=self.stats,
        )
        self.writer = BufferWriter(
            store,
            dispatcher,
            stats=self.stats,
            dead_letter=self.dead_letter,
            requeue=requeue,
            max_deliveries=max_deliveries,
            batches_per_task=predict_batches_per_task,
            on_enqueued=self.backpressure.note_enqueued,
            partition_of=topology.partition_of,
            on_batch=on_batch,
        )
        self.quarantine = Quarantine(
            connection.as_uri(include_password=True),
            topology.ingest_queue_name,
            store,
            self.stats,
            scan=2 * prefetch + 64,
            dead_exchange=topology.dead_exchange_name,
        )
        self._unreadable_seen = False  # a delivery the AMQP client could not read
        self._decoding = 0.0  # seconds spent in on_message, ever
        # "waiting for the broker at ..." while it is down, "connected" once it answers
        self.broker_wait = BrokerWaitLog(connection.as_uri(), log)

    def run(self) -> None:
        """Consume until :meth:`stop`, connecting again whenever the connection is lost
        (also after a delivery the AMQP client could not read: see :mod:`.unreadable`)."""
        relax_gc()
        lost = self.connection.connection_errors + self.connection.channel_errors
        try:
            while not self._stopping.is_set():
                try:
                    self._consume()
                except _Stopped:
                    break
                except UnreadableDelivery:
                    self._unreadable_seen = True
                except lost as exc:
                    log.debug("lost the connection to the broker: %r", exc)
                    self._stopping.wait(_RESTART_DELAY_S)
        finally:
            self.backpressure.close()
            self.writer.close()
            self.dead_letter.close()

    def stop(self) -> None:
        """Make :meth:`run` return: it writes and acks what it holds first, if it can."""
        self._stopping.set()

    # the connection ----------------------------------------------------------------------
    def _consume(self) -> None:
        """One connection's life: connect (waiting for the broker as long as it takes),
        consume until stopped or the connection fails, then write what is buffered."""
        if self._unreadable_seen:
            self._unreadable_seen = False
            if not self.quarantine():  # not found (yet): it comes again, and so do we
                self._stopping.wait(self.requeue.delay_s)
        with self.connection.clone() as connection:
            connection.ensure_connection(
                errback=self._connection_failed, callback=self._raise_if_stopping
            )
            self.broker_wait.connected()
            channel = connection.default_channel
            self.topology.declare(channel)
            consumer = Consumer(
                channel,
                queues=[self.topology.ingest_queue()],
                on_message=self._on_message,
                prefetch_count=self.prefetch,
            )
            with consumer:  # consumes inside, cancelled on the way out
                self._begin(connection)
                with guard_frames(connection):
                    self._drain(connection, consumer)
            if len(self.buffer):
                self._flush()
            self.writer.settle()  # acked on the channel that received them

    def _connection_failed(self, exc: BaseException, interval: float) -> None:
        self.broker_wait.failed(exc)

    def _raise_if_stopping(self) -> None:
        if self._stopping.is_set():
            raise _Stopped

    def _begin(self, connection: Connection) -> None:
        """Start afresh on a new connection. Messages buffered on a lost channel are
        redelivered by the broker: forget them (a write still in flight is let finish:
        the redelivered copies find it stored)."""
        self.writer.forget()
        self.buffer.take()
        self.backpressure.start(connection)

    def _drain(self, connection: Connection, consumer: Consumer) -> None:
        """Receive messages until stopped, with waits that fit the buffer: while messages
        are buffered, wait ``batch_idle_s`` for the next one and write the buffer if none
        comes; with nothing buffered, wait up to a second at a time."""
        idle = 0.0  # seconds since the last delivery
        while not self._stopping.is_set():
            self._tick()
            self.backpressure.apply(consumer)
            wait = self.batch_idle_s if len(self.buffer) else _IDLE_WAIT_S
            if self.backpressure.paused:
                wait = min(wait, self.backlog_check_s)
            if self.writer.busy:
                wait = min(wait, _SETTLE_POLL_S)  # its acks are due as soon as it is done
            buffered, started, decoding = len(self.buffer), time.monotonic(), self._decoding
            try:
                connection.drain_events(timeout=wait)
            except TimeoutError:
                connection.heartbeat_check()
                idle += wait  # (waits are short while a write is in flight)
                if len(self.buffer):
                    self.buffer.wait(wait)
                    if idle >= self.batch_idle_s:
                        self._flush()  # the queue went quiet
            except OSError:
                if not self._stopping.is_set():
                    raise
            else:
                if buffered and len(self.buffer):  # waiting, not decoding, counts
                    spent = time.monotonic() - started - (self._decoding - decoding)
                    self.buffer.wait(max(0.0, spent))
                idle = 0.0

    def _tick(self) -> None:
        """Between waits: ack a write that is done, write a buffer that is due."""
        self.writer.settle(wait=False)
        if self.buffer.due(time.monotonic()):
            self._flush()

    def _flush(self) -> None:
        self.writer.write(self.buffer.take())

    # messages ------------------------------------------------------------------------
    def _on_message(self, message: Message) -> None:
        started = time.monotonic()
        try:
            batch = self._decode(message)
            if batch is not None and self.buffer.add(Pending(message, batch), time.monotonic()):
                self._flush()
        finally:
            self._decoding += time.monotonic() - started

    def _decode(self, message: Message) -> ReadingsArrays | None:
        """The message's batch; None if it was dead-lettered instead, whatever the reason
        (an unexpected error while decoding is the message's, never the consumer's)."""
        routing_key = (message.delivery_info or {}).get("routing_key")
        try:
            return decode_message(
                message.body,
                max_readings=self.max_readings,
                max_bytes=self.max_bytes,
                routing_key=routing_key,
            )
        except InvalidMessage as exc:
            self.dead_letter(message, exc.reason)
        except Exception as exc:  # one message never stops ingestion
            log.exception("decoding message %s failed", delivery_ids(message)[1])
            self.stats.add(decode_errors=1)
            self.dead_letter(message, f"body: could not be decoded ({describe(exc)})")
        return None

    @classmethod
    def for_context(
        cls, connection: Connection, context: WorkerContext, prefetch: int = 256
    ) -> IngestConsumer:
        """A consumer wired to a worker context's store, dispatcher and settings."""
        broker = context.settings.broker
        return cls(
            connection,
            context.topology,
            store=context.store,
            dispatcher=context.dispatcher,
            max_readings=broker.max_batch_readings,
            max_bytes=broker.max_message_bytes,
            prefetch=prefetch,
            batch_messages=min(broker.ingest_batch_messages, prefetch),
            predict_backlog_limit=broker.predict_backlog_limit,
            predict_batches_per_task=broker.predict_batches_per_task,
            batch_delay_s=broker.ingest_batch_delay_ms / 1000,
            batch_idle_s=broker.ingest_idle_ms / 1000,
        )
