"""Backpressure for the ingest consumer: stop taking readings while scoring lags behind.

The ingest consumer turns every stored batch into a predict task. If the workers are
slower than the machines, it is the predict queue that would grow without bound; with a
:class:`BacklogGate` the consumer pauses instead, the readings wait in ``<ns>.ingest``,
that queue reaches its length limit and the broker refuses (nacks) the publishers,
which wait, retry or spool. Nothing is dropped anywhere along the chain.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from kombu import Connection, Queue

__all__ = ["BacklogGate", "QueueDepthProbe"]

log = logging.getLogger(__name__)


class QueueDepthProbe:
    """Messages ready in ``queue`` (a passive declare on a channel of its own); ``None``
    when the broker does not answer. The first call declares the queue (with its own
    arguments, as Celery does) so that a not-yet-created queue reads as empty."""

    def __init__(self, connection: Connection, queue: Queue) -> None:
        self._connection = connection
        self._queue = queue
        self._channel: Any = None

    def __call__(self) -> int | None:
        try:
            if self._channel is None:
                self._channel = self._connection.channel()
                self._queue.bind(self._channel).declare()
            declared = self._channel.queue_declare(queue=self._queue.name, passive=True)
            return int(declared.message_count)
        except Exception as exc:  # the consumer's own connection tells about real outages
            log.warning("depth of %s unavailable: %s", self._queue.name, exc)
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
