"""A machine's status on the overview, and the overview's order: the worst on top.

>>> from datetime import UTC, datetime
>>> m = MachineOut(id="pump-1", columns=["a"], first_seen=datetime(2026, 1, 1, tzinfo=UTC),
...                last_seen=datetime(2026, 1, 1, tzinfo=UTC), last_reading_at=None,
...                n_readings=10, n_scored=10, champion_version=1)
>>> row = machine_row(m, None, [], now=datetime(2026, 1, 1, 0, 1, tzinfo=UTC))
>>> row.status.value, row.open_alerts
('normal', 0)
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mmlw.schemas.alerts import AlertOut
from mmlw.schemas.resources import MachineOut, ScoresOut

__all__ = ["STALE_AFTER", "MachineRow", "Status", "machine_row", "worst_first"]

STALE_AFTER = timedelta(minutes=5)


class Status(enum.StrEnum):
    """From worst to best: the order of the overview."""

    ALERTING = "alerting"
    ANOMALOUS = "anomalous"
    NO_DATA = "no data"
    NO_MODEL = "no model"
    NORMAL = "normal"

    @property
    def rank(self) -> int:
        return list(Status).index(self)


@dataclass(frozen=True)
class MachineRow:
    """One line of the overview."""

    machine: MachineOut
    status: Status
    open_alerts: int
    firing_alerts: int
    score: float | None
    threshold: float | None
    recent: ScoresOut | None

    @property
    def score_ratio(self) -> float:
        """Latest score over its threshold (0 without one): how far over the line."""
        if self.score is None or not self.threshold:
            return 0.0
        return self.score / self.threshold


def machine_row(
    machine: MachineOut,
    recent: ScoresOut | None,
    alerts: Sequence[AlertOut],
    *,
    now: datetime,
    stale_after: timedelta = STALE_AFTER,
) -> MachineRow:
    """Status of ``machine`` from its newest scores and its alerts.

    alerting: an alert of the machine is firing; anomalous: its newest scored reading is
    over the threshold, or an alert is pending; no data: nothing received for
    ``stale_after`` (by the server's receive time, so replayed or simulated clocks do
    not matter); no model: no champion yet; normal otherwise.
    """
    mine = [a for a in alerts if a.machine_id == machine.id and a.state != "resolved"]
    firing = sum(a.state == "firing" for a in mine)
    score = recent.scores[-1] if recent and recent.scores else None
    threshold = recent.thresholds[-1] if recent and recent.thresholds else None
    flagged = bool(recent and recent.flags and recent.flags[-1])
    if firing:
        status = Status.ALERTING
    elif flagged or mine:
        status = Status.ANOMALOUS
    elif machine.n_readings == 0 or now - machine.last_seen > stale_after:
        status = Status.NO_DATA
    elif machine.champion_version is None:
        status = Status.NO_MODEL
    else:
        status = Status.NORMAL
    return MachineRow(machine, status, len(mine), firing, score, threshold, recent)


def worst_first(rows: Sequence[MachineRow]) -> list[MachineRow]:
    """By status (alerting first), then by how far over its threshold, then by id."""
    return sorted(
        rows, key=lambda r: (r.status.rank, -r.firing_alerts, -r.score_ratio, r.machine.id)
    )
