"""Writing the ingest consumer's buffers: store -> send to scoring -> ack, never ack first.

One transaction stores every batch of a buffer (:meth:`ReadingsRepository.add_many`), in
a writer thread while the consumer receives and decodes the next buffer (one write in
flight); enqueueing and acks stay on the consumer's thread, which owns the channel (it
calls :meth:`BufferWriter.settle`). Scoring messages of up to ``batches_per_task`` stored
batches of one partition each are sent (confirmed) before any message of the buffer is
acknowledged, so a crash at any point loses nothing: an unacked message is redelivered,
stored once (``message_id``) and sent to scoring again.

If a buffer's write fails because the store cannot be reached (and it does not answer a
probe either), the buffer is requeued. Any other failed write is retried message by
message, so the others are stored: one the store refuses is dead-lettered, and one that
keeps failing with the store up is requeued at most ``max_deliveries`` times in all
(counted per message in this consumer) and then dead-lettered with the last error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from kombu.message import Message

from mmlw.messaging.dispatch import Dispatcher
from mmlw.schemas.readings_arrays import ReadingsArrays
from mmlw.store import IngestOutcome, Store
from mmlw.workers.consumers.batch import Pending, predict_tasks
from mmlw.workers.consumers.dead_letter import DeadLetters
from mmlw.workers.consumers.decode import describe, message_key
from mmlw.workers.consumers.requeue import DeliveryCounter, Requeue
from mmlw.workers.consumers.stats import IngestStats
from mmlw.workers.consumers.store_health import store_answers, store_unreachable

__all__ = ["BufferWriter"]

log = logging.getLogger(__name__)

_REUSED = "message_id reused with different content"


@dataclass
class _Verdicts:
    """What became of the messages of a failed write, retried one by one: requeued as the
    store was down (``down``), or requeued after a failure of their own (``failing``)."""

    down: list[Message] = field(default_factory=list)
    failing: list[tuple[Message, str]] = field(default_factory=list)


class BufferWriter:
    """Stores buffers one at a time in a thread of its own; :meth:`settle` (on the
    consumer's thread) enqueues their scoring and acks them."""

    def __init__(
        self,
        store: Store,
        dispatcher: Dispatcher,
        *,
        stats: IngestStats,
        dead_letter: DeadLetters,
        requeue: Requeue,
        max_deliveries: int,
        batches_per_task: int,
        on_enqueued: Callable[[int], None],
        partition_of: Callable[[str], int],
        on_batch: Callable[[ReadingsArrays], None] | None = None,
    ) -> None:
        self.partition_of = partition_of
        self.store = store
        self.dispatcher = dispatcher
        self.stats = stats
        self.dead_letter = dead_letter
        self.requeue = requeue
        self.max_deliveries = max(1, int(max_deliveries))
        self.batches_per_task = max(1, int(batches_per_task))
        self.on_enqueued = on_enqueued
        self.on_batch = on_batch
        self.deliveries = DeliveryCounter()
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight: tuple[Future[list[IngestOutcome]], list[Pending]] | None = None

    @property
    def busy(self) -> bool:
        """Whether a write is in flight (its acks are due as soon as it is done)."""
        return self._in_flight is not None

    def write(self, pending: list[Pending]) -> None:
        """Hand ``pending`` to the writer thread (one transaction), after settling the
        buffer written before."""
        self.stats.add(flushes=1)
        self.settle()  # one write in flight: the previous buffer is acked first
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="mmlw-ingest-writer")
        future = self._executor.submit(self.store.readings.add_many, [p.batch for p in pending])
        self._in_flight = (future, pending)

    def settle(self, *, wait: bool = True) -> None:
        """Finish the buffer whose write is in flight: enqueue its scoring and ack it (or,
        if the write failed, requeue or retry it). With ``wait=False`` only if that write
        is done already."""
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

    def forget(self) -> None:
        """Drop the buffer in flight without acking it, once its write is done: its
        channel is gone, the broker redelivers its messages and they find it stored."""
        if self._in_flight is not None:
            self._in_flight[0].exception()
            self._in_flight = None

    def close(self) -> None:
        """Wait for the writer thread to finish and stop it."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _write_failed(self, pending: list[Pending], error: Exception) -> None:
        """After a buffer's write failed: if the store is unreachable, requeue the buffer
        (the messages are not at fault); otherwise write its messages one by one, so the
        others are stored and a message that fails on its own is dealt with alone."""
        if store_unreachable(error) and not store_answers(self.store):
            self.requeue([p.message for p in pending])
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

    def _write_alone(self, item: Pending, verdicts: _Verdicts) -> None:
        """Store, enqueue and ack one message here and now; a failure goes to ``verdicts``
        (or, if the store refused the message, to the dead letters)."""
        try:
            outcomes = self.store.readings.add_many([item.batch])
        except Exception as exc:
            log.exception("storing message %s failed", item.message_id)
            self._alone_failed(item, exc, verdicts)
            return
        self._finish([item], outcomes)

    def _alone_failed(self, item: Pending, error: Exception, verdicts: _Verdicts) -> None:
        """Judge a failed write of one message: the store was down (requeue), it refused
        this message (dead letter), or it failed in a way worth another try (requeue,
        counted)."""
        if not store_unreachable(error):
            self.dead_letter(item.message, f"store: refused the batch ({describe(error)})")
        elif store_answers(self.store):
            verdicts.failing.append((item.message, describe(error)))
        else:
            verdicts.down.append(item.message)

    def _give_back(self, verdicts: _Verdicts) -> None:
        """Requeue what could not be stored; a message that failed on its own for the
        ``max_deliveries``-th time is dead-lettered with its last error instead."""
        requeue = list(verdicts.down)
        for message, error in verdicts.failing:
            attempts = self.deliveries.add(message_key(message))
            if attempts >= self.max_deliveries:
                self.dead_letter(message, f"store: not stored after {attempts} attempts ({error})")
            else:
                requeue.append(message)
        if requeue:
            self.requeue(requeue)

    def _finish(self, pending: list[Pending], outcomes: Sequence[IngestOutcome]) -> None:
        """Dead-letter the batches whose ``message_id`` was reused, enqueue the scoring of
        the others and ack them; if enqueueing fails, requeue them (they are stored: a
        redelivery enqueues them again)."""
        kept = []
        for item, outcome in zip(pending, outcomes, strict=True):
            if outcome.reused:
                self.dead_letter(item.message, f"{_REUSED} (stored as batch {outcome.batch_id})")
            else:
                kept.append((item, outcome))
        try:
            # duplicates too: a redelivered batch may have been stored but never scored
            tasks = predict_tasks(
                [(o.batch_id, p.batch.machine_id) for p, o in kept],
                self.batches_per_task,
                self.partition_of,
            )
            for batches in tasks:
                self.dispatcher.score(batches)
            self.on_enqueued(len(tasks))
        except Exception:
            log.exception("enqueueing %d stored batch(es) failed", len(kept))
            self.requeue([p.message for p, _ in kept])
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
