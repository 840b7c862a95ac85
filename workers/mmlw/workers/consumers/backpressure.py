"""Backpressure for the ingest consumer: stop taking readings while scoring lags behind.

The ingest consumer sends every stored batch to scoring. If the scorers are slower than
the machines, it is the scoring queues that would grow without bound; with a
:class:`BacklogGate` the consumer pauses instead, the readings wait in ``<ns>.ingest``,
that queue reaches its length limit and the broker refuses (nacks) the publishers,
which wait, retry or spool. Nothing is dropped anywhere along the chain.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from kombu import Connection, Consumer, Queue

from mmlw.workers.consumers.stats import IngestStats

__all__ = ["BacklogGate", "Backpressure", "QueueDepthProbe"]

log = logging.getLogger(__name__)


def queue_names(queues: Sequence[Queue]) -> str:
    """``a`` or ``a .. z``: the queues a log line speaks of."""
    first, last = queues[0].name, queues[-1].name
    return first if len(queues) == 1 else f"{first} .. {last}"


class QueueDepthProbe:
    """Messages ready in ``queues``, summed (passive declares on a channel of its own);
    ``None`` when the broker does not answer. The first call declares the queues (with
    their own arguments) so that a not-yet-created queue reads as empty."""

    def __init__(self, connection: Connection, queues: Sequence[Queue]) -> None:
        self._connection = connection
        self._queues = list(queues)
        self._channel: Any = None

    def __call__(self) -> int | None:
        try:
            if self._channel is None:
                self._channel = self._connection.channel()
                for queue in self._queues:
                    queue.bind(self._channel).declare()
            return sum(
                int(self._channel.queue_declare(queue=q.name, passive=True).message_count)
                for q in self._queues
            )
        except Exception as exc:  # the consumer's own connection tells about real outages
            log.warning("depth of %s unavailable: %s", queue_names(self._queues), exc)
            self.close()
            return None

    def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            with contextlib.suppress(Exception):
                channel.close()


class BacklogGate:
    """Says whether to pause: above ``limit`` queued tasks until back at ``resume_at``
    (default half the limit, so a queue at the limit does not toggle the consumer at
    every check). ``depth`` is called at most once per ``ttl_s``; in between, the tasks
    reported by :meth:`note_enqueued` count on top of the last reading, so the limit
    holds however fast they are sent. An unknown depth (``None``) never pauses.

    >>> depths = iter([5, 12, 8, 4])
    >>> gate = BacklogGate(lambda: next(depths), limit=10, ttl_s=0)
    >>> [gate.paused() for _ in range(4)]
    [False, True, True, False]
    """

    def __init__(
        self,
        depth: Callable[[], int | None],
        limit: int,
        *,
        resume_at: int | None = None,
        ttl_s: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.resume_at = limit // 2 if resume_at is None else resume_at
        self.ttl_s = ttl_s
        self.last_depth: int | None = None
        self._depth = depth
        self._clock = clock
        self._checked_at = -float("inf")
        self._since_check = 0
        self._paused = False

    def note_enqueued(self, tasks: int) -> None:
        """``tasks`` more were sent to the queue since the last reading."""
        self._since_check += tasks

    def paused(self) -> bool:
        now = self._clock()
        if now - self._checked_at >= self.ttl_s:
            self._checked_at = now
            self.last_depth, self._since_check = self._depth(), 0
        if self.last_depth is None:
            self._paused = False
        else:
            estimate = self.last_depth + self._since_check
            self._paused = estimate > (self.resume_at if self._paused else self.limit)
        return self._paused


class Backpressure:
    """Cancels a kombu consumer while ``queues`` hold more than ``limit`` messages and
    consumes again once it is back at half of that (messages already received are kept
    and written). With ``limit`` None it never pauses.

    The depth is read on a connection of its own, cloned from the consumer's at every
    :meth:`start`: the probe's waits must not read (and, failing, swallow) the frames of
    deliveries.
    """

    def __init__(
        self, queues: Sequence[Queue], limit: int | None, *, check_s: float, stats: IngestStats
    ) -> None:
        self.queues = list(queues)
        self.limit = limit
        self.check_s = check_s
        self.stats = stats
        self.paused = False
        self._gate: BacklogGate | None = None
        self._probe: QueueDepthProbe | None = None
        self._connection: Connection | None = None

    def start(self, connection: Connection) -> None:
        """Begin afresh on a new connection of the consumer (whose consumers consume)."""
        self.close()
        self.paused = False
        if self.limit is None:
            return
        self._connection = connection.clone()
        self._probe = QueueDepthProbe(self._connection, self.queues)
        self._gate = BacklogGate(self._probe, self.limit, ttl_s=self.check_s)

    def note_enqueued(self, tasks: int) -> None:
        """``tasks`` more were sent to the queue."""
        if self._gate is not None:
            self._gate.note_enqueued(tasks)

    def apply(self, consumer: Consumer) -> None:
        """Pause or resume ``consumer`` if the backlog says so."""
        gate = self._gate
        if gate is None or gate.paused() == self.paused:
            return
        self.paused = not self.paused
        if self.paused:
            consumer.cancel()
            self.stats.add(pauses=1)
        else:
            consumer.consume()
        log.info(
            "%s taking readings: %s hold %s messages (limit %d)",
            "paused" if self.paused else "resumed",
            queue_names(self.queues),
            gate.last_depth,
            gate.limit,
        )

    def close(self) -> None:
        """Close the probe and drop its connection (without waiting for the broker, which
        may be gone), if there is one."""
        self._gate = None
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.close()
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.collect()
