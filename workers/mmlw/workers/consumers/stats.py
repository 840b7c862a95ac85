"""What the ingest consumer has done so far, counted for tests, benchmarks and logs."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

__all__ = ["IngestStats"]


@dataclass
class IngestStats:
    """Counters of one consumer, safe to bump from its consumer and writer threads.

    >>> stats = IngestStats()
    >>> stats.add(batches=2, readings=20)
    >>> stats.batches, stats.readings, stats.dead_letters
    (2, 20, 0)
    """

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
