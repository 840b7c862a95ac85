"""Giving messages back to the broker after a failure of the consumer's own (the store
was down, a write failed), and counting how often one message came back."""

from __future__ import annotations

import threading
from collections import OrderedDict

from kombu.message import Message

from mmlw.workers.consumers.stats import IngestStats

__all__ = ["DeliveryCounter", "Requeue"]


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


class Requeue:
    """Gives messages back to the broker, ``delay_s`` later (so a store that is down is
    not hammered by the same messages), or at once once ``stopping`` is set."""

    def __init__(self, stats: IngestStats, delay_s: float, stopping: threading.Event) -> None:
        self.stats = stats
        self.delay_s = delay_s
        self.stopping = stopping

    def __call__(self, messages: list[Message]) -> None:
        self.stats.add(requeued=len(messages))
        self.stopping.wait(self.delay_s)
        for message in messages:
            message.requeue()
