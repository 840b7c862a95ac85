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
more tasks than that, and resumes below half of it (:mod:`workers.consumers.backpressure`),
so a backlog waits in the length-limited ingest queue, whose publishers are then refused.

A message that breaks the contract is handled on its own, at once: recorded as a dead
letter (reason and raw body) and rejected without requeue, which on RabbitMQ routes it to
``<ns>.dead``. If the store or broker fails, the buffered messages are requeued, never
dropped; a redelivered message is stored once (``message_id``) and enqueued again.
"""

from __future__ import annotations

import gc
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kombu import Connection, Consumer
from kombu.mixins import ConsumerMixin
from kombu.transport.base import Message

from backend.errors import InvalidMessage
from backend.messaging.dispatch import Dispatcher
from backend.messaging.topology import Topology
from backend.schemas.readings_arrays import ReadingsArrays, decode_readings
from backend.store import IngestOutcome, Store
from workers.consumers.backpressure import BacklogGate, QueueDepthProbe
from workers.context import WorkerContext

__all__ = ["IngestConsumer", "IngestStats", "decode_message", "predict_tasks", "relax_gc"]

log = logging.getLogger(__name__)

_MAX_HOLD = 4  # a buffered message is written within this many batch delays in any case
_SETTLE_POLL_S = 0.002  # how often the consumer looks whether a write in flight is done


@dataclass
class IngestStats:
    batches: int = 0
    readings: int = 0
    duplicates: int = 0
    dead_letters: int = 0
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
    body: bytes, *, max_readings: int, routing_key: str | None = None
) -> ReadingsArrays:
    """The batch in ``body``, or :class:`InvalidMessage` naming the field.

    Plainly written valid messages go straight to arrays
    (:func:`~backend.schemas.readings_arrays.decode_readings`); any other goes through
    the contract's validation, which decides and words the reason.
    """
    batch = decode_readings(body, max_readings)
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


@dataclass(frozen=True)
class _Pending:
    message: Message
    batch: ReadingsArrays


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
        self._paused = False
        self._stopping = threading.Event()
        self._pending: list[_Pending] = []
        self._pending_readings = 0
        self._oldest = 0.0  # when the buffer's first message came
        self._waited = 0.0  # how long the buffer has waited for more messages
        self._decoding = 0.0  # seconds spent in on_message, ever
        self._writer: ThreadPoolExecutor | None = None
        self._in_flight: tuple[Future[list[IngestOutcome]], list[_Pending]] | None = None

    def run(self, _tokens: int = 1, **kwargs: Any) -> None:
        """Consume until :meth:`stop` (reconnecting on connection loss)."""
        relax_gc()
        try:
            super().run(_tokens, **kwargs)
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None

    # kombu's ConsumerMixin hooks ---------------------------------------------------------
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
        comes; with nothing buffered, wait up to ``safety_interval`` (default 1 s)."""
        idle_wait = safety_interval or 1.0
        waited = 0.0
        with self.consumer_context(**kwargs) as (connection, _channel, consumers):
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
        if self._probe is not None:
            self._probe.close()
        if self.predict_backlog_limit is not None:
            self._probe = QueueDepthProbe(connection, self.topology.task_queue("predict"))
            self._gate = BacklogGate(
                self._probe, self.predict_backlog_limit, ttl_s=self.backlog_check_s
            )

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
        properties = message.properties or {}
        routing_key = (message.delivery_info or {}).get("routing_key")
        message_id = properties.get("message_id")
        try:
            batch = decode_message(
                message.body, max_readings=self.max_readings, routing_key=routing_key
            )
        except InvalidMessage as exc:
            self._dead_letter(message, exc.reason, routing_key, message_id)
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

    def _dead_letter(
        self, message: Message, reason: str, routing_key: str | None, message_id: str | None
    ) -> None:
        try:
            self.store.dead_letters.add(
                source="amqp",
                reason=reason,
                body=_raw(message.body),
                routing_key=routing_key,
                message_id=message_id,
            )
        except Exception:
            log.exception("recording dead letter %s failed; requeueing", message_id)
            self._requeue([message])
            return
        log.warning("dead-lettered message %s: %s", message_id, reason)
        self.stats.add(dead_letters=1)
        message.reject(requeue=False)

    def flush(self) -> None:
        """Hand the buffered batches to the writer thread (one transaction), after
        finishing the buffer written before; :meth:`settle` enqueues their scoring and
        acks them once it is stored.

        If the write fails for a buffer of several messages, each is retried on its own,
        so one message the store refuses cannot hold back the others; the ones that still
        fail are requeued (after ``requeue_delay_s``).
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
        if the write failed, retry each message on its own and requeue what still
        fails). With ``wait=False`` only if that write is done already."""
        if self._in_flight is None or not (wait or self._in_flight[0].done()):
            return
        future, pending = self._in_flight
        self._in_flight = None
        try:
            outcomes = future.result()
        except Exception:
            log.exception("storing %d buffered message(s) failed", len(pending))
            outcomes = None
        if outcomes is not None and self._enqueue_and_ack(pending, outcomes):
            return
        failed = pending if len(pending) == 1 else [p for p in pending if not self._write([p])]
        if failed:
            self._requeue([p.message for p in failed])

    def _write(self, pending: list[_Pending]) -> bool:
        """Store, enqueue and ack ``pending`` here and now; False if that failed."""
        try:
            outcomes = self.store.readings.add_many([p.batch for p in pending])
        except Exception:
            log.exception("storing %d buffered message(s) failed", len(pending))
            return False
        return self._enqueue_and_ack(pending, outcomes)

    def _enqueue_and_ack(self, pending: list[_Pending], outcomes: Sequence[IngestOutcome]) -> bool:
        try:
            # duplicates too: a redelivered batch may have been stored but never scored
            tasks = predict_tasks(
                [(o.batch_id, p.batch.machine_id) for p, o in zip(pending, outcomes, strict=True)],
                self.predict_batches_per_task,
            )
            for batch_ids in tasks:
                self.dispatcher.predict_many(batch_ids)
            if self._gate is not None:
                self._gate.note_enqueued(len(tasks))
        except Exception:
            log.exception("enqueueing %d stored batch(es) failed", len(pending))
            return False
        for item, outcome in zip(pending, outcomes, strict=True):
            item.message.ack()
            if outcome.created:
                self.stats.add(batches=1, readings=len(item.batch))
                if self.on_batch is not None:
                    self.on_batch(item.batch)
            else:
                self.stats.add(duplicates=1)
        return True

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
            prefetch=prefetch,
            batch_messages=min(context.settings.broker.ingest_batch_messages, prefetch),
            predict_backlog_limit=context.settings.broker.predict_backlog_limit,
            predict_batches_per_task=context.settings.broker.predict_batches_per_task,
            batch_delay_s=context.settings.broker.ingest_batch_delay_ms / 1000,
            batch_idle_s=context.settings.broker.ingest_idle_ms / 1000,
        )


def _raw(body: bytes | str | memoryview) -> bytes:
    """The message body as bytes (kombu hands some bodies, e.g. empty ones, as str)."""
    return body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body)
