"""Drive machines: read their readings in batches and publish them, paced like a clock."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from mmlw.messaging.sink import ReadingsSink
from mmlw.workers.simulator.frame import Source

__all__ = ["SimulationStats", "run_simulation"]


@dataclass
class SimulationStats:
    """What a simulation has published so far."""

    readings: int = 0
    batches: int = 0
    per_machine: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def snapshot(self) -> SimulationStats:
        """An independent copy."""
        return replace(self, per_machine=dict(self.per_machine))


class _Clock:
    """Wall-clock bookkeeping of one run: deadline, stop event and progress reports."""

    def __init__(
        self,
        stats: SimulationStats,
        stop: threading.Event,
        duration_s: float | None,
        on_progress: Callable[[SimulationStats], None] | None,
        progress_every_s: float,
    ) -> None:
        self.stats, self.stop, self.on_progress = stats, stop, on_progress
        self.every = max(progress_every_s, 0.0)
        self.started = time.monotonic()
        self.deadline = math.inf if duration_s is None else self.started + duration_s
        self.next_report = self.started + self.every

    def report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        self.stats.elapsed_s = now - self.started
        if self.on_progress is not None and (force or now >= self.next_report):
            self.next_report = now + self.every
            self.on_progress(self.stats.snapshot())

    def wait_until(self, due: float) -> bool:
        """Sleep until ``due`` (monotonic seconds); False if stopped or out of time first."""
        while True:
            now = time.monotonic()
            if self.stop.is_set() or now >= self.deadline:
                return False
            if now >= due:
                return True
            wake = min(due, self.deadline)
            if self.on_progress is not None:
                wake = min(wake, max(self.next_report, now))
            self.stop.wait(wake - now)
            self.report()


def run_simulation(
    sources: Sequence[Source],
    sink: ReadingsSink,
    *,
    batch_size: int = 50,
    speedup: float = 1.0,
    period_s: float = 1.0,
    duration_s: float | None = None,
    max_readings: int | None = None,
    stop: threading.Event | None = None,
    on_progress: Callable[[SimulationStats], None] | None = None,
    progress_every_s: float = 2.0,
) -> SimulationStats:
    """Publish the sources' readings to ``sink`` and return what was published.

    Guarantees: each published batch holds 1 to ``batch_size`` consecutive readings of
    one source; machines take turns (one batch each per round) in the order given; the
    batch starting at a machine's k-th reading (counted from 0 in this run) is published
    no earlier than ``(k + batch_size - 1) * period_s / speedup`` wall seconds after the
    start, so no reading is sent before its simulated time has come (``speedup <= 0`` or
    ``math.inf``: as fast as possible). It returns as soon as ``stop`` is set, after
    ``duration_s`` wall seconds, once exactly ``max_readings`` readings (summed over all
    machines) are published, or when every source is used up -- whichever comes first.
    A source is only read when its batch is about to be published, so no reading is
    lost on stopping. ``on_progress`` gets a snapshot about every ``progress_every_s``
    seconds and once at the end. The sink is not closed.
    """
    if batch_size < 1 or period_s <= 0:
        raise ValueError("need batch_size >= 1 and period_s > 0")
    if (max_readings is not None and max_readings < 0) or (
        duration_s is not None and duration_s < 0
    ):
        raise ValueError("max_readings and duration_s must be >= 0")
    stats = SimulationStats(per_machine={source.machine_id: 0 for source in sources})
    stop = threading.Event() if stop is None else stop
    clock = _Clock(stats, stop, duration_s, on_progress, progress_every_s)
    tick = period_s / speedup if 0 < speedup < math.inf else 0.0
    sent = [0] * len(sources)
    active = list(range(len(sources)))
    running = True
    while running and active:
        for i in list(active):
            want = (
                batch_size
                if max_readings is None
                else min(batch_size, max_readings - stats.readings)
            )
            due = clock.started + (sent[i] + want - 1) * tick
            if want <= 0 or not clock.wait_until(due):
                running = False
                break
            frame = sources[i].read(want)
            if frame is None:
                active.remove(i)
                continue
            sink.publish(frame.to_batch())
            sent[i] += len(frame)
            stats.readings += len(frame)
            stats.batches += 1
            stats.per_machine[frame.machine_id] = stats.per_machine.get(frame.machine_id, 0) + len(
                frame
            )
            clock.report()
    clock.report(force=True)
    return stats
