"""Data lifecycle: make tomorrow's partitions, delete what is past its retention.

Run daily by the worker's beat (``mmlw.retention.apply``) and on demand by ``mmlw db
prune``; each run is idempotent and only ever removes data older than its horizon (see
:mod:`mmlw.store.retention` for what is kept regardless).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mmlw.settings.sections import RetentionSettings
from mmlw.store import Store
from mmlw.store.partitions import ensure_partitions
from mmlw.store.retention import Pruned, prune_alerts, prune_readings, prune_scores

__all__ = ["RetentionReport", "apply_retention", "horizon"]


@dataclass(frozen=True)
class RetentionReport:
    """Partitions made ahead, and what each pruned table lost."""

    partitions_created: list[str]
    pruned: list[Pruned]

    def summary(self) -> dict[str, Any]:
        """A JSON-able account of the run (a task's result, a CLI's output)."""
        return {
            "partitions_created": self.partitions_created,
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
    """Create the day partitions ahead of ``now`` (PostgreSQL), then prune readings,
    scores and resolved alerts older than their horizons."""
    now = now or datetime.now(UTC)
    database = store.database
    created = ensure_partitions(database.engine, now=now, ahead_days=settings.partitions_ahead_days)
    pruned = []
    for days, prune in (
        (settings.readings_days, prune_readings),
        (settings.scores_days, prune_scores),
        (settings.alerts_days, prune_alerts),
    ):
        cutoff = horizon(days, now)
        if cutoff is not None:
            pruned.append(prune(database, cutoff))
    return RetentionReport(created, pruned)
