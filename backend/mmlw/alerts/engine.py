"""The alert rule engine: pure state transitions, after Grafana's alert model.

One alert instance per (rule, machine) at a time. Evaluating a rule at ``now`` with the
:class:`Evidence` of its condition moves that instance::

    (none) --holds--> pending --held for `for_s`--> firing
    firing --not held for `keep_firing_for_s`--> resolved
    pending --stops holding--> (none; nothing was ever sent)

A firing alert notifies once, then again every ``repeat_interval_s`` while it fires; a
resolved alert that had notified sends one resolved notice. Acknowledged or silenced
alerts keep changing state but send nothing. Nothing here reads a clock or a database:
callers pass ``now`` and the stored snapshot and persist what comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from fnmatch import fnmatchcase

__all__ = [
    "AlertSnapshot",
    "AlertState",
    "Event",
    "Evidence",
    "RuleTiming",
    "Transition",
    "labels_match",
    "step",
]


class AlertState(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class Event(StrEnum):
    """What a notification says."""

    FIRING = "firing"
    REPEAT = "repeat"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class RuleTiming:
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    repeat_interval_s: float = 4 * 3600.0


@dataclass(frozen=True)
class Evidence:
    """A condition evaluated once: whether it holds, and what to show about it."""

    holds: bool
    summary: str = ""
    score: float | None = None
    threshold: float | None = None
    model_version: int | None = None
    top_sensors: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class AlertSnapshot:
    """The stored state of one alert instance that matters to the engine."""

    state: AlertState
    started_at: datetime
    last_active_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    last_notified_at: datetime | None = None
    acknowledged: bool = False
    evidence: Evidence = field(default_factory=lambda: Evidence(holds=True))

    @property
    def is_open(self) -> bool:
        return self.state is not AlertState.RESOLVED


@dataclass(frozen=True)
class Transition:
    """What to persist: ``after`` (None = no open instance any more, ``discard`` = delete
    the pending one) and the notification to send, if any."""

    after: AlertSnapshot | None
    event: Event | None = None
    created: bool = False
    discard: bool = False


def step(
    timing: RuleTiming,
    current: AlertSnapshot | None,
    evidence: Evidence,
    now: datetime,
    *,
    silenced: bool = False,
) -> Transition:
    """Advance the open instance (``current``; None or resolved means none) to ``now``."""
    if current is None or not current.is_open:
        if not evidence.holds:
            return Transition(after=None)
        pending = AlertSnapshot(
            state=AlertState.PENDING, started_at=now, last_active_at=now, evidence=evidence
        )
        fired = _advance(timing, pending, evidence, now, silenced)
        return replace(fired, created=True)
    return _advance(timing, current, evidence, now, silenced)


def _advance(
    timing: RuleTiming, alert: AlertSnapshot, evidence: Evidence, now: datetime, silenced: bool
) -> Transition:
    quiet = silenced or alert.acknowledged
    if evidence.holds:
        alert = replace(alert, last_active_at=now, evidence=evidence)
    if alert.state is AlertState.PENDING:
        if not evidence.holds:
            return Transition(after=None, discard=True)
        if now - alert.started_at < _s(timing.for_s):
            return Transition(after=alert)
        alert = replace(alert, state=AlertState.FIRING, fired_at=now)
    # firing
    if not evidence.holds and now - alert.last_active_at >= _s(timing.keep_firing_for_s):
        resolved = replace(alert, state=AlertState.RESOLVED, resolved_at=now)
        notify = alert.last_notified_at is not None and not quiet
        return Transition(after=resolved, event=Event.RESOLVED if notify else None)
    if quiet:
        return Transition(after=alert)
    if alert.last_notified_at is None:
        return Transition(after=replace(alert, last_notified_at=now), event=Event.FIRING)
    if now - alert.last_notified_at >= _s(timing.repeat_interval_s):
        return Transition(after=replace(alert, last_notified_at=now), event=Event.REPEAT)
    return Transition(after=alert)


def labels_match(matchers: dict[str, str], labels: dict[str, str]) -> bool:
    """Every matcher (a shell-style pattern) matches the label of that name."""
    return all(
        name in labels and fnmatchcase(labels[name], pattern) for name, pattern in matchers.items()
    )


def _s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)
