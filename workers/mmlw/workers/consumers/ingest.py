"""The ingest consumer: validate -> store -> enqueue predict -> ack, in micro-batches.

Valid messages are buffered and written together: one transaction stores every batch of
the buffer (:meth:`ReadingsRepository.add_many`), then predict tasks of up to
``predict_batches_per_task`` stored batches each are enqueued, then each message is
acknowledged. The transaction runs in a writer thread while the consumer receives and
decodes the next buffer (one write in flight; enqueueing and acks stay on the consumer's
thread, which owns the channel). A buffer is written when it holds
``batch_messages`` messages or ``batch_readings`` readings, when no further message
arrives within ``batch_idle_s``, or when it has waited ``batch_delay_s`` for more
messages, whichever comes first (settings ``MMLW_BROKER__INGEST_IDLE_MS``, 15, and
``..._BATCH_DELAY_MS``, 50): under load buffers fill up, and a lone message waits at most
``batch_idle_s``. At 100 small messages a second that groups about five of them per
transaction and predict task, which is what lets one worker keep up (bench/RESULTS.md).

Only waiting counts towards ``batch_delay_s``, not the time spent decoding messages that
were already there: behind a backlog (after an outage, in a burst) the buffer fills to
its size limits, so the consumer catches up in large transactions and tasks instead of
writing whatever it decoded in 50 ms (about 50 messages of 1,000 readings on a busy
2-core machine, and twice the per-task alert and drift work). No message is held longer
than ``4 * batch_delay_s`` either way.

Backpressure: with ``predict_backlog_limit``, the consumer stops taking messages (cancels
its broker consumer, keeps writing and acking what it holds) while ``<ns>.predict`` holds
more tasks than that, and resumes below half of it (:mod:`mmlw.workers.consumers.backpressure`),
so a backlog waits in the length-limited ingest queue, whose publishers are then refused.

One message never stops ingestion. A message that breaks the contract -- or that fails
to decode in any other way, or whose ``message_id`` is stored already for other content --
is handled on its own, at once: recorded as a dead letter (reason and raw body) and
rejected without requeue, which on RabbitMQ routes it to ``<ns>.dead``. If a buffer's
write fails because the store cannot be reached (and it does not answer a probe either),
the buffered messages are requeued, never dropped; a redelivered message is stored once
(``message_id``) and enqueued again. Any other failed write is retried message by
message, so the others are stored: one the store refuses is dead-lettered, and one that
keeps failing with the store up is requeued at most ``max_deliveries`` times in all
(counted per message in this consumer) and then dead-lettered with the last error. A
delivery the AMQP client cannot read at all (a routing key or property that is not
UTF-8 breaks py-amqp's frame reader) is found with pika and dead-lettered the same way.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pika
from amqp.exceptions import RecoverableConnectionError, UnexpectedFrame
from kombu import Connection, Consumer
from kombu.mixins import ConsumerMixin
from kombu.transport.base import Message
from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from mmlw.errors import InvalidMessage, ServiceUnavailable
from mmlw.messaging.broker_check import BrokerWaitLog
from mmlw.messaging.dispatch import Dispatcher
from mmlw.messaging.pika_publisher import pika_url
from mmlw.messaging.topology import Topology
from mmlw.schemas.readings import MAX_MESSAGE_BYTES
from mmlw.schemas.readings_arrays import ReadingsArrays, decode_readings
from mmlw.store import IngestOutcome, Store
from mmlw.workers.consumers.backpressure import BacklogGate, QueueDepthProbe
from mmlw.workers.context import WorkerContext

__all__ = [
    "DeliveryCounter",
    "IngestConsumer",
    "IngestStats",
    "decode_message",
    "predict_tasks",
    "relax_gc",
    "store_unreachable",
]

log = logging.getLogger(__name__)

_MAX_HOLD = 4  # a buffered message is written within this many batch delays in any case
_SETTLE_POLL_S = 0.002  # how often the consumer looks whether a write in flight is done
_REUSED = "message_id reused with different content"
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_UNREACHABLE = (
    sa_exc.OperationalError,  # connection refused or lost, server shutting down, locked
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # no pooled connection came free
    ServiceUnavailable,
    OSError,  # ConnectionError and TimeoutError among them
)


@dataclass
class IngestStats:
    batches: int = 0
    readings: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    decode_errors: int = 0  # dead letters whose decoding raised something unexpected
    requeued: int = 0
    flushes: int = 0
    pauses: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


def predict_tasks(batches: list[tuple[int, str]], size: int) -> list[list[int]]:
    """The predict tasks of a written buffer: ``(batch id, machine id)`` pairs grouped
    machine by machine into tasks of at most ``size`` batches, a machine split across
    tasks only when its batches do not fit in one of their own. A task runs its
    machines' alert rules and drift test once each, so the fewer machines per task, the
    less of that work per batch.

    >>> predict_tasks([(1, "a"), (2, "b"), (3, "a"), (4, "c"), (5, "b")], size=3)
    [[1, 3], [2, 5, 4]]
    >>> predict_tasks([(1, "a"), (2, "a"), (3, "a"), (4, "b")], size=2)
    [[1, 2], [3, 4]]
    """
    per_machine: dict[str, list[int]] = {}
    for batch_id, machine_id in batches:
        per_machine.setdefault(machine_id, []).append(batch_id)
    tasks: list[list[int]] = []
    current: list[int] = []
    for machine_id in sorted(per_machine):
        ids = per_machine[machine_id]
        if current and len(current) + len(ids) > size:
            tasks.append(current)
            current = []
        while len(current) + len(ids) > size:  # a machine larger than a task
            room = size - len(current)
            tasks.append(current + ids[:room])
            current, ids = [], ids[room:]
        current = current + ids
    if current:
        tasks.append(current)
    return tasks


def decode_message(
    body: bytes,
    *,
    max_readings: int,
    routing_key: str | None = None,
    max_bytes: int | None = MAX_MESSAGE_BYTES,
) -> ReadingsArrays:
    """The batch in ``body``, or :class:`InvalidMessage` naming the field.

    Plainly written valid messages go straight to arrays
    (:func:`~mmlw.schemas.readings_arrays.decode_readings`); any other goes through
    the contract's validation, which decides and words the reason. A body longer than
    ``max_bytes`` is refused unparsed.
    """
    batch = decode_readings(body, max_readings, max_bytes)
    if routing_key and routing_key != batch.machine_id:
        raise InvalidMessage(
            f"machine_id: {batch.machine_id!r} does not match routing key {routing_key!r}"
        )
    return batch


def relax_gc(threshold0: int = 50_000) -> None:
    """Collect cyclic garbage less often in this process.

    Decoding a 1000-reading message allocates over a thousand containers; at Python's
    default first threshold (700) that sets off collections every message, older
    generations included, over the ~270k objects SQLAlchemy, Celery and pandas leave in
    the heap: measured here, it took the parse from 1.0 to 3.0 ms per message.
    """
    first, second, third = gc.get_threshold()
    gc.set_threshold(max(first, threshold0), second, third)


def store_unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the store (or broker) could not be reached or was busy --
    worth retrying later -- rather than that it refused what it was given."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, _UNREACHABLE)


class DeliveryCounter:
    """How often this consumer gave each message back after a failure of its own, for the
    ``size`` messages that failed last (older counts are forgotten).

    >>> counter = DeliveryCounter(size=2)
    >>> [counter.add(k) for k in ("a", "a", "b", "c", "a")]
    [1, 2, 1, 1, 1]
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._counts: OrderedDict[str, int] = OrderedDict()

    def add(self, key: str) -> int:
        """Count one more failed delivery of ``key``; how many there were, this one too."""
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count
        while len(self._counts) > self.size:
            self._counts.popitem(last=False)
        return count


def _printable(text: str, limit: int) -> str:
    """``text`` with control characters and lone surrogates escaped, cut to ``limit``
    characters: safe to store in a text column and to print."""
    escaped = _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], text)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def _describe(error: BaseException) -> str:
    """One storable line naming an unexpected error."""
    return _printable(f"{type(error).__name__}: {error}", 500)


def _message_key(message: Message) -> str:
    """What identifies one message across its redeliveries: its AMQP ``message_id``, else
    its body's digest."""
    message_id = (message.properties or {}).get("message_id")
    if isinstance(message_id, str) and message_id:
        return f"id:{message_id}"
    return "sha256:" + hashlib.sha256(_raw(message.body)).hexdigest()


class _UnreadableDelivery(RecoverableConnectionError):
    """The AMQP client could not read a delivery; its connection was dropped unread."""


@dataclass(frozen=True)
class _Pending:
    message: Message
    batch: ReadingsArrays

    @property
    def message_id(self) -> str | None:
        return _delivery_ids(self.message)[1]


@dataclass
class _Verdicts:
    """What became of the messages of a failed write, retried one by one: requeued as the
    store was down (``down``), or requeued after a failure of their own (``failing``)."""

    down: list[Message] = field(default_factory=list)
    failing: list[tuple[Message, str]] = field(default_factory=list)


class IngestConsumer(ConsumerMixin):
    """Consumes ``<ns>.ingest`` until :meth:`stop`; one instance per thread or process.

    ``prefetch`` bounds the unacknowledged messages the broker hands over, so it should
    be at least ``batch_messages``.
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
        self.dispatcher = dispatcher
        self.max_readings = max_readings
        self.max_bytes = max_bytes
        self.max_deliveries = max(1, int(max_deliveries))
        self.deliveries = DeliveryCounter()
        self.prefetch = prefetch
        self.batch_messages = batch_messages
        self.batch_readings = batch_readings
        self.batch_delay_s = batch_delay_s
        self.batch_idle_s = batch_idle_s
        self.requeue_delay_s = requeue_delay_s
        self.predict_backlog_limit = predict_backlog_limit
        self.backlog_check_s = backlog_check_s
        self.predict_batches_per_task = max(1, int(predict_batches_per_task))
        self.on_batch = on_batch
        self.stats = IngestStats()
        self._gate: BacklogGate | None = None
        self._probe: QueueDepthProbe | None = None
        self._probe_connection: Connection | None = None
        self._unreadable_seen = False  # a delivery the AMQP client could not read
        self._paused = False
        self._stopping = threading.Event()
        self._pending: list[_Pending] = []
        self._pending_readings = 0
        self._oldest = 0.0  # when the buffer's first message came
        self._waited = 0.0  # how long the buffer has waited for more messages
        self._decoding = 0.0  # seconds spent in on_message, ever
        self._writer: ThreadPoolExecutor | None = None
        self._in_flight: tuple[Future[list[IngestOutcome]], list[_Pending]] | None = None
        # "waiting for the broker at ..." while it is down, "connected" once it answers
        self.broker_wait = BrokerWaitLog(connection.as_uri(), log)

    def run(self, _tokens: int = 1, **kwargs: Any) -> None:
        """Consume until :meth:`stop` (reconnecting on connection loss, also after a
        delivery the AMQP client could not read: see :meth:`_guard_frames`)."""
        relax_gc()
        try:
            super().run(_tokens, **kwargs)
        finally:
            self._close_probe()
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None

    # kombu's ConsumerMixin hooks ---------------------------------------------------------
    def on_connection_error(self, exc: BaseException, interval: float) -> None:
        self.broker_wait.failed(exc)

    def on_connection_revived(self) -> None:
        self.broker_wait.connected()

    def get_consumers(self, consumer_cls: Callable[..., Consumer], channel: Any) -> list[Consumer]:
        self.topology.declare(channel)
        return [
            consumer_cls(
                queues=[self.topology.ingest_queue()],
                on_message=self.on_message,
                prefetch_count=self.prefetch,
            )
        ]

    def consume(
        self,
        limit: int | None = None,
        timeout: float | None = None,
        safety_interval: float | None = None,
        **kwargs: Any,
    ) -> Iterator[None]:
        """kombu's consume loop with a wait that fits the buffer: while messages are
        buffered, wait ``batch_idle_s`` for the next one and write the buffer if none
        comes; with nothing buffered, wait up to ``safety_interval`` (default 1 s). After
        a delivery the AMQP client could not read, that message is taken out of the queue
        first (:meth:`_quarantine`)."""
        if self._unreadable_seen and not self.should_stop:
            self._unreadable_seen = False
            if not self._quarantined():  # not found (yet): it comes again, and so do we
                self._stopping.wait(self.requeue_delay_s)
        idle_wait = safety_interval or 1.0
        waited = 0.0
        with (
            self.consumer_context(**kwargs) as (connection, _channel, consumers),
            self._guard_frames(connection),
        ):
            for _ in range(limit) if limit else itertools.count():
                if self.should_stop:
                    break
                self.on_iteration()
                self._apply_backpressure(consumers)
                wait = self.batch_idle_s if self._pending else idle_wait
                if self._paused:
                    wait = min(wait, self.backlog_check_s)
                if self._in_flight is not None:
                    wait = min(wait, _SETTLE_POLL_S)  # its acks are due as soon as it is done
                buffered, started, decoding = bool(self._pending), time.monotonic(), self._decoding
                try:
                    connection.drain_events(timeout=wait)
                except TimeoutError:
                    connection.heartbeat_check()
                    waited += wait  # since the last message (waits are short while a
                    if self._pending:  # write is in flight)
                        self._waited += wait
                        if waited >= self.batch_idle_s:
                            self.flush()  # the queue went quiet
                    if timeout and waited >= timeout:
                        raise
                except OSError:
                    if not self.should_stop:
                        raise
                else:
                    if buffered and self._pending:  # waiting, not decoding, counts
                        spent = time.monotonic() - started - (self._decoding - decoding)
                        self._waited += max(0.0, spent)
                    yield
                    waited = 0.0

    def on_consume_ready(
        self, connection: Any, channel: Any, consumers: Any, **kwargs: Any
    ) -> None:
        # Messages buffered on a lost channel are redelivered by the broker: forget them
        # (a write still in flight is let finish: the redelivered copies find it stored).
        if self._in_flight is not None:
            self._in_flight[0].exception()
            self._in_flight = None
        self._pending, self._pending_readings = [], 0
        self._paused = False  # fresh consumers are consuming
        self._close_probe()
        if self.predict_backlog_limit is not None:
            # a connection of its own: the probe's waits must not read (and, failing,
            # swallow) the frames of deliveries
            self._probe_connection = connection.clone()
            self._probe = QueueDepthProbe(
                self._probe_connection, self.topology.task_queue("predict")
            )
            self._gate = BacklogGate(
                self._probe, self.predict_backlog_limit, ttl_s=self.backlog_check_s
            )

    def _close_probe(self) -> None:
        """Close the backlog probe and drop its connection (without waiting for the
        broker, which may be gone), if there is one."""
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.close()
        connection, self._probe_connection = self._probe_connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.collect()

    def _apply_backpressure(self, consumers: list[Consumer]) -> None:
        """Cancel the broker consumers while the predict backlog is too deep, and
        consume again once it has gone down (messages already received are kept)."""
        if self._gate is None or self._gate.paused() == self._paused:
            return
        self._paused = not self._paused
        for consumer in consumers:
            if self._paused:
                consumer.cancel()
            else:
                consumer.consume()
        if self._paused:
            self.stats.add(pauses=1)
        log.info(
            "%s taking readings: %s holds %s tasks (limit %d)",
            "paused" if self._paused else "resumed",
            self.topology.task_queue_name("predict"),
            self._gate.last_depth,
            self._gate.limit,
        )

    def on_iteration(self) -> None:
        self.settle(wait=False)
        if self._pending and (
            self._waited >= self.batch_delay_s
            or time.monotonic() - self._oldest >= _MAX_HOLD * self.batch_delay_s
        ):
            self.flush()

    def on_consume_end(self, connection: Any, channel: Any) -> None:
        if self._pending:
            self.flush()
        self.settle()

    # messages ------------------------------------------------------------------------
    def on_message(self, message: Message) -> None:
        started = time.monotonic()
        try:
            self._take(message)
        finally:
            self._decoding += time.monotonic() - started

    def _take(self, message: Message) -> None:
        batch = self._decode(message)
        if batch is None:
            return
        if not self._pending:
            self._oldest, self._waited = time.monotonic(), 0.0
        self._pending.append(_Pending(message, batch))
        self._pending_readings += len(batch)
        if (
            len(self._pending) >= self.batch_messages
            or self._pending_readings >= self.batch_readings
        ):
            self.flush()

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
            self._dead_letter(message, exc.reason)
        except Exception as exc:  # one message never stops ingestion
            log.exception("decoding message %s failed", _delivery_ids(message)[1])
            self.stats.add(decode_errors=1)
            self._dead_letter(message, f"body: could not be decoded ({_describe(exc)})")
        return None

    def _dead_letter(self, message: Message, reason: str) -> None:
        """Record ``message`` as a dead letter and reject it without requeue (RabbitMQ then
        routes it to ``<ns>.dead``). If the store is down, requeue it instead; if the store
        is up but refuses the record, reject it all the same: ``<ns>.dead`` keeps it."""
        routing_key, message_id = _delivery_ids(message)
        reason = _printable(reason, 2000)
        try:
            self.store.dead_letters.add(
                source="amqp",
                reason=reason,
                body=_raw(message.body),
                routing_key=routing_key,
                message_id=message_id,
            )
        except Exception as exc:
            if store_unreachable(exc) and not self._store_answers():
                log.exception("recording dead letter %s failed; requeueing", message_id)
                self._requeue([message])
                return
            log.exception("the store refused dead letter %s; rejecting it anyway", message_id)
        log.warning("dead-lettered message %s: %s", message_id, reason)
        self.stats.add(dead_letters=1)
        message.reject(requeue=False)

    @contextmanager
    def _guard_frames(self, connection: Connection) -> Iterator[None]:
        """If the AMQP client fails to read a delivery (py-amqp raises UnicodeDecodeError
        for a routing key or property that is not UTF-8, and UnexpectedFrame for the
        frames after it), its frame reader is out of step: drop the connection without
        reading another frame (closing it politely would read on and pair one message's
        delivery with the next one's body), and raise a connection error, so kombu
        reconnects; the next :meth:`consume` first takes the unreadable message out of
        the queue (:meth:`_quarantine`)."""
        try:
            yield
        except (UnicodeDecodeError, UnexpectedFrame) as exc:
            log.exception("the AMQP client could not read a delivery; reconnecting")
            self._unreadable_seen = True
            with contextlib.suppress(Exception):
                connection.collect()
            raise _UnreadableDelivery(str(exc)) from exc

    def _quarantined(self) -> bool:
        """:meth:`_quarantine`, False if that failed (the broker went away, say)."""
        try:
            return self._quarantine()
        except Exception:
            log.exception("looking for the unreadable delivery failed")
            return False

    def _quarantine(self) -> bool:
        """Take the first message of the ingest queue the AMQP client cannot read out of
        it: read the queue with pika (which hands such strings over as bytes), dead-letter
        the unreadable message and give every message before it back. False if none is
        among the first ``2 * prefetch + 64``, or if it could not be recorded."""
        url = pika_url(self.connection.as_uri(include_password=True))
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            channel = connection.channel()
            readable = 0  # the delivery tag of the last readable message taken
            try:
                for _ in range(2 * self.prefetch + 64):
                    method, properties, body = channel.basic_get(self.topology.ingest_queue_name)
                    if method is None:
                        return False
                    unreadable = _unreadable_fields(method, properties)
                    if not unreadable:
                        readable = method.delivery_tag
                        continue
                    recorded = self._record_unreadable(method, properties, body, unreadable)
                    channel.basic_reject(method.delivery_tag, requeue=not recorded)
                    return recorded
                return False
            finally:
                if readable:
                    channel.basic_nack(readable, multiple=True, requeue=True)
        finally:
            connection.close()

    def _record_unreadable(
        self, method: Any, properties: Any, body: bytes, fields: list[str]
    ) -> bool:
        """Record a message the AMQP client cannot read as a dead letter; False if the
        store did not take it."""
        message_id = _storable(properties.message_id)
        reason = f"amqp: {', '.join(fields)} not valid UTF-8 (unreadable for the consumer)"
        try:
            self.store.dead_letters.add(
                source="amqp",
                reason=reason,
                body=bytes(body),
                routing_key=_storable(method.routing_key),
                message_id=message_id,
            )
        except Exception:
            log.exception("recording unreadable message %s failed", message_id)
            return False
        log.warning("dead-lettered message %s: %s", message_id, reason)
        self.stats.add(dead_letters=1)
        return True

    def _store_answers(self) -> bool:
        """Whether the store answers a trivial query now (a failed write was the data's
        fault, not the connection's)."""
        try:
            with self.store.database.engine.connect() as connection:
                connection.execute(select(1))
        except Exception:
            return False
        return True

    def flush(self) -> None:
        """Hand the buffered batches to the writer thread (one transaction), after
        finishing the buffer written before; :meth:`settle` enqueues their scoring and
        acks them once it is stored.

        If the write fails, the buffer is requeued when the store is down, and else
        retried message by message (:meth:`_write_failed`), so one message the store
        refuses cannot hold back the others. Requeues wait ``requeue_delay_s`` first.
        """
        pending, self._pending, self._pending_readings = self._pending, [], 0
        self.stats.add(flushes=1)
        self.settle()  # one write in flight: the previous buffer is acked first
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="mmlw-ingest-writer")
        future = self._writer.submit(self.store.readings.add_many, [p.batch for p in pending])
        self._in_flight = (future, pending)

    def settle(self, *, wait: bool = True) -> None:
        """Finish the buffer whose write is in flight: enqueue its scoring and ack it (or,
        if the write failed, see :meth:`_write_failed`). With ``wait=False`` only if that
        write is done already."""
        if self._in_flight is None or not (wait or self._in_flight[0].done()):
            return
        future, pending = self._in_flight
        self._in_flight = None
        try:
            outcomes = future.result()
        except Exception as exc:
            log.exception("storing %d buffered message(s) failed", len(pending))
            self._write_failed(pending, exc)
            return
        self._finish(pending, outcomes)

    def _write_failed(self, pending: list[_Pending], error: Exception) -> None:
        """After a buffer's write failed: if the store is unreachable, requeue the buffer
        (the messages are not at fault); otherwise write its messages one by one, so the
        others are stored and a message that fails on its own is dealt with alone."""
        if store_unreachable(error) and not self._store_answers():
            self._requeue([p.message for p in pending])
            return
        verdicts = _Verdicts()
        if len(pending) == 1:
            self._alone_failed(pending[0], error, verdicts)
        else:
            for item in pending:
                if verdicts.down:  # the store went away meanwhile: the rest waits too
                    verdicts.down.append(item.message)
                else:
                    self._write_alone(item, verdicts)
        self._give_back(verdicts)

    def _write_alone(self, item: _Pending, verdicts: _Verdicts) -> None:
        """Store, enqueue and ack one message here and now; a failure goes to ``verdicts``
        (or, if the store refused the message, to the dead letters)."""
        try:
            outcomes = self.store.readings.add_many([item.batch])
        except Exception as exc:
            log.exception("storing message %s failed", item.message_id)
            self._alone_failed(item, exc, verdicts)
            return
        self._finish([item], outcomes)

    def _alone_failed(self, item: _Pending, error: Exception, verdicts: _Verdicts) -> None:
        """Judge a failed write of one message: the store was down (requeue), it refused
        this message (dead letter), or it failed in a way worth another try (requeue,
        counted)."""
        if not store_unreachable(error):
            self._dead_letter(item.message, f"store: refused the batch ({_describe(error)})")
        elif self._store_answers():
            verdicts.failing.append((item.message, _describe(error)))
        else:
            verdicts.down.append(item.message)

    def _give_back(self, verdicts: _Verdicts) -> None:
        """Requeue what could not be stored; a message that failed on its own for the
        ``max_deliveries``-th time is dead-lettered with its last error instead."""
        requeue = list(verdicts.down)
        for message, error in verdicts.failing:
            attempts = self.deliveries.add(_message_key(message))
            if attempts >= self.max_deliveries:
                self._dead_letter(message, f"store: not stored after {attempts} attempts ({error})")
            else:
                requeue.append(message)
        if requeue:
            self._requeue(requeue)

    def _finish(self, pending: list[_Pending], outcomes: Sequence[IngestOutcome]) -> None:
        """Dead-letter the batches whose ``message_id`` was reused, enqueue the scoring of
        the others and ack them; if enqueueing fails, requeue them (they are stored: a
        redelivery enqueues them again)."""
        kept = []
        for item, outcome in zip(pending, outcomes, strict=True):
            if outcome.reused:
                self._dead_letter(item.message, f"{_REUSED} (stored as batch {outcome.batch_id})")
            else:
                kept.append((item, outcome))
        try:
            # duplicates too: a redelivered batch may have been stored but never scored
            tasks = predict_tasks(
                [(o.batch_id, p.batch.machine_id) for p, o in kept], self.predict_batches_per_task
            )
            for batch_ids in tasks:
                self.dispatcher.predict_many(batch_ids)
            if self._gate is not None:
                self._gate.note_enqueued(len(tasks))
        except Exception:
            log.exception("enqueueing %d stored batch(es) failed", len(kept))
            self._requeue([p.message for p, _ in kept])
            return
        for item, outcome in kept:
            item.message.ack()
            if outcome.created:
                self.stats.add(batches=1, readings=len(item.batch))
                self._notify(item.batch)
            else:
                self.stats.add(duplicates=1)

    def _notify(self, batch: ReadingsArrays) -> None:
        """Tell ``on_batch`` about a stored batch; what it raises is logged, not raised."""
        if self.on_batch is None:
            return
        try:
            self.on_batch(batch)
        except Exception:
            log.exception("on_batch failed for batch %s", batch.message_id)

    def _requeue(self, messages: list[Message]) -> None:
        self.stats.add(requeued=len(messages))
        self._stopping.wait(self.requeue_delay_s)
        for message in messages:
            message.requeue()

    def stop(self) -> None:
        self._stopping.set()
        self.should_stop = True

    @classmethod
    def for_context(
        cls, connection: Connection, context: WorkerContext, prefetch: int = 256
    ) -> IngestConsumer:
        """A consumer wired to a worker context's store, dispatcher and settings."""
        return cls(
            connection,
            context.topology,
            store=context.store,
            dispatcher=context.dispatcher,
            max_readings=context.settings.broker.max_batch_readings,
            max_bytes=context.settings.broker.max_message_bytes,
            prefetch=prefetch,
            batch_messages=min(context.settings.broker.ingest_batch_messages, prefetch),
            predict_backlog_limit=context.settings.broker.predict_backlog_limit,
            predict_batches_per_task=context.settings.broker.predict_batches_per_task,
            batch_delay_s=context.settings.broker.ingest_batch_delay_ms / 1000,
            batch_idle_s=context.settings.broker.ingest_idle_ms / 1000,
        )


def _delivery_ids(message: Message) -> tuple[str | None, str | None]:
    """The message's routing key and AMQP ``message_id``, made storable (a sender may
    put control characters in them)."""
    routing_key = (message.delivery_info or {}).get("routing_key")
    message_id = (message.properties or {}).get("message_id")
    return (
        None if routing_key is None else _printable(str(routing_key), 255),
        None if message_id is None else _printable(str(message_id), 255),
    )


_STRING_PROPERTIES = (
    "content_type",
    "content_encoding",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)


def _unreadable_fields(method: Any, properties: Any) -> list[str]:
    """The names of a pika delivery's strings that are not UTF-8 (pika hands them over as
    bytes): routing key, exchange, properties, header names and values (a header's bytes
    that are UTF-8 are a byte array, which py-amqp reads)."""
    fields = [
        name for name in ("routing_key", "exchange") if isinstance(getattr(method, name), bytes)
    ]
    fields += [name for name in _STRING_PROPERTIES if isinstance(getattr(properties, name), bytes)]
    headers = properties.headers or {}
    if any(isinstance(k, bytes) or _not_utf8(v) for k, v in headers.items()):
        fields.append("headers")
    return fields


def _not_utf8(value: object) -> bool:
    if not isinstance(value, bytes):
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _storable(value: str | bytes | None) -> str | None:
    """A routing key or property as storable text (bytes decoded, invalid ones replaced)."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return _printable(text, 255)


def _raw(body: bytes | str | memoryview) -> bytes:
    """The message body as bytes (kombu hands some bodies, e.g. empty ones, as str)."""
    return body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)
