"""Data lifecycle: make tomorrow's partitions, roll up closed hours, delete what is
past its retention.

Run daily by the worker's beat (``mmlw.retention.apply``) and on demand by ``mmlw db
prune``; each run is idempotent and only ever removes data older than its horizon (see
:mod:`mmlw.store.retention` for what is kept regardless). The raw batches are added to
the rollups (:mod:`mmlw.services.rollups`) before anything is pruned, and pruning keeps
a batch the rollups do not hold, so long ranges stay drawable once raw data is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mmlw.services.rollups import roll_up_closed
from mmlw.settings.sections import RetentionSettings
from mmlw.store import Store
from mmlw.store.aggregates import HOUR, MINUTE
from mmlw.store.partitions import ensure_partitions
from mmlw.store.retention import Pruned, prune_alerts, prune_readings, prune_scores
from mmlw.store.rollups import RolledUp, RollupsRepository

__all__ = ["RetentionReport", "apply_retention", "horizon"]


@dataclass(frozen=True)
class RetentionReport:
    """Partitions made ahead, batches added to the rollups, and what each pruned table
    lost."""

    partitions_created: list[str]
    pruned: list[Pruned]
    rolled_up: RolledUp = field(default_factory=RolledUp)

    def summary(self) -> dict[str, Any]:
        """A JSON-able account of the run (a task's result, a CLI's output)."""
        return {
            "partitions_created": self.partitions_created,
            "rolled_up": {
                "reading_batches": self.rolled_up.readings_batches,
                "score_batches": self.rolled_up.score_batches,
                "orphan_score_batches": self.rolled_up.orphan_score_batches,
            },
            "pruned": {
                p.table: {
                    "horizon": p.horizon.isoformat(),
                    "rows_deleted": p.rows_deleted,
                    "partitions_dropped": p.partitions_dropped,
                    "partitions_kept": p.partitions_kept,
                }
                for p in self.pruned
            },
        }


def horizon(days: int, now: datetime) -> datetime | None:
    """What is older than this goes; None keeps everything (``days`` 0).

    >>> horizon(30, datetime(2026, 12, 31, tzinfo=UTC)).isoformat()
    '2026-12-01T00:00:00+00:00'
    >>> horizon(0, datetime(2026, 12, 31, tzinfo=UTC)) is None
    True
    """
    return None if days <= 0 else now - timedelta(days=days)


def apply_retention(
    store: Store, settings: RetentionSettings, *, now: datetime | None = None
) -> RetentionReport:
    """Create the day partitions ahead of ``now`` (PostgreSQL), add the closed hours'
    raw batches to the rollups, then prune readings, scores, resolved alerts and rollups
    older than their horizons."""
    now = now or datetime.now(UTC)
    database = store.database
    created = ensure_partitions(database.engine, now=now, ahead_days=settings.partitions_ahead_days)
    rolled_up = roll_up_closed(store, now)
    pruned = []
    for days, prune in (
        (settings.readings_days, prune_readings),
        (settings.scores_days, prune_scores),
        (settings.alerts_days, prune_alerts),
    ):
        cutoff = horizon(days, now)
        if cutoff is not None:
            pruned.append(prune(database, cutoff))
    rollups = RollupsRepository(database)
    for days, period, name in (
        (settings.rollup_minute_days, MINUTE, "rollups_minute"),
        (settings.rollup_hour_days, HOUR, "rollups_hour"),
    ):
        cutoff = horizon(days, now)
        if cutoff is not None:
            pruned.append(Pruned(name, cutoff, rows_deleted=rollups.prune(period, cutoff)))
    return RetentionReport(created, pruned, rolled_up)
