"""The demo's alerts: timed on the simulated machines' clock, and how they met the
injected faults (every fault alerted, every alert on one).

The demo knows where it injected faults (reading positions of each simulated machine) and
the store knows when alerts fired and resolved (wall clock). The simulator publishes
reading ``k`` of a run no earlier than ``(k + batch_size - 1) · period / speedup`` seconds
after it starts, so a wall-clock instant maps back to the position of the newest reading
sent by then; ``slack`` readings allow for scoring and evaluation after a batch lands.

>>> faults = [(100, 160), (500, 503), (900, 960)]
>>> alerts = [(104.0, 170.0), (510.0, 520.0), (2000.0, 2010.0)]
>>> fault_coverage(faults, alerts, slack=30)
FaultCoverage(faults=3, alerted=2, alerts=3, on_faults=2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mmlw.alerts.config import AlertsConfig, FlagsCondition

__all__ = ["FaultCoverage", "fault_coverage", "on_readings_clock", "reading_position"]


@dataclass(frozen=True)
class FaultCoverage:
    faults: int  # injected fault episodes
    alerted: int  # of them, with an alert firing during the episode (or just after it)
    alerts: int  # alert instances that fired
    on_faults: int  # of them, overlapping an episode

    def __add__(self, other: FaultCoverage) -> FaultCoverage:
        return FaultCoverage(
            self.faults + other.faults,
            self.alerted + other.alerted,
            self.alerts + other.alerts,
            self.on_faults + other.on_faults,
        )


def reading_position(
    at: datetime, started: datetime, speedup: float, period_s: float, batch_size: int
) -> float:
    """The position of the newest reading the simulator had sent by wall-clock ``at``."""
    return (at - started).total_seconds() * speedup / period_s - (batch_size - 1)


def fault_coverage(
    faults: Sequence[tuple[int, int]], alerts: Sequence[tuple[float, float]], slack: float
) -> FaultCoverage:
    """Episodes ``[start, end)`` and alerts ``[fired, resolved]``, both in reading
    positions; an alert covers an episode when it fired before ``end + slack`` and was
    still firing at ``start``."""

    def covers(fault: tuple[int, int], alert: tuple[float, float]) -> bool:
        return alert[0] <= fault[1] + slack and alert[1] >= fault[0]

    return FaultCoverage(
        faults=len(faults),
        alerted=sum(any(covers(f, a) for a in alerts) for f in faults),
        alerts=len(alerts),
        on_faults=sum(any(covers(f, a) for f in faults) for a in alerts),
    )


def on_readings_clock(config: AlertsConfig, speedup: float) -> AlertsConfig:
    """``config`` with the timings of its score rules (pending, keep firing, repeat)
    divided by ``speedup``, so that they hold on simulated machines' clock: "keep firing
    for 30 s" is 30 s of readings, not 15 minutes of them at 30x. Other rules (no data)
    are about the wall clock and stay as they are.

    >>> from mmlw.alerts.config import load_alerts_config
    >>> fast = on_readings_clock(load_alerts_config(None), 30.0)
    >>> [(r.name, r.keep_firing_for) for r in fast.rules][:2]
    [('anomalous-readings', 1.0), ('score-far-above-threshold', 1.0)]
    """
    rules = [
        rule.model_copy(
            update={
                "for_s": rule.for_s / speedup,
                "keep_firing_for": rule.keep_firing_for / speedup,
                "repeat_interval": rule.repeat_interval / speedup,
            }
        )
        if isinstance(rule.condition, FlagsCondition)
        else rule
        for rule in config.rules
    ]
    return config.model_copy(update={"rules": rules})
