"""Adding raw batches to the rollups, each exactly once.

One transaction per chunk of batches (in id order): claim the batches (``UPDATE ... SET
rolled_up = true WHERE NOT rolled_up RETURNING id``), aggregate what was claimed, and
add the aggregates to their buckets with one upsert (``INSERT ... ON CONFLICT DO
UPDATE`` adding counts and sums, keeping extremes). A batch is claimed by one
transaction only: a concurrent run waits on the claimed rows and finds them rolled up
when the first commits (PostgreSQL), or waits for the write lock (SQLite); a run that
fails rolls back its claims with its sums. So re-running never counts a batch twice, and
batches that arrive late for a bucket already rolled up are added to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sqlalchemy import Table, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from mmlw.store.aggregates import (
    PERIODS,
    READING_KEYS,
    SCORE_KEYS,
    reading_aggregates,
    score_aggregates,
)
from mmlw.store.compact import unpack_times, unpack_values
from mmlw.store.packing import unpack, us_to_datetimes
from mmlw.store.rollup_tables import ReadingRollupRow, ScoreRollupRow
from mmlw.store.tables import ReadingBatch, ScoreBatch, readings_of

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_CHUNK", "roll_up_readings", "roll_up_scores"]

DEFAULT_CHUNK = 200  # batches per transaction

_READINGS = cast(Table, ReadingBatch.__table__)
_SCORES = cast(Table, ScoreBatch.__table__)
_READING_ROLLUPS = cast(Table, ReadingRollupRow.__table__)
_SCORE_ROLLUPS = cast(Table, ScoreRollupRow.__table__)


def roll_up_readings(
    connection: Connection,
    before: datetime,
    *,
    after_id: int = 0,
    chunk: int = DEFAULT_CHUNK,
    periods: Sequence[int] = PERIODS,
) -> tuple[int, int | None]:
    """Add up to ``chunk`` readings batches not rolled up yet, whose last reading is
    before ``before``, with ids above ``after_id``, to the rollups, in the caller's
    transaction; (batches added, the last id looked at: None when none was left)."""
    candidates = _candidates(connection, _READINGS, before, after_id, chunk)
    if not candidates:
        return 0, None
    claimed = _claim(connection, _READINGS, candidates)
    if claimed:
        rows = connection.execute(
            select(
                _READINGS.c.machine_id,
                _READINGS.c.columns,
                _READINGS.c.timestamps_us,
                _READINGS.c["values"],
            ).where(_READINGS.c.id.in_(claimed), *_span(_READINGS, candidates))
        )
        frame = reading_aggregates(
            (
                (
                    r.machine_id,
                    list(r.columns),
                    times := unpack_times(r.timestamps_us),
                    unpack_values(r.values, len(times), len(r.columns)),
                )
                for r in rows
            ),
            periods,
        )
        _upsert(connection, _READING_ROLLUPS, frame, READING_KEYS, _add_readings)
    return len(claimed), max(i for i, _ in candidates)


def roll_up_scores(
    connection: Connection,
    before: datetime,
    *,
    after_id: int = 0,
    chunk: int = DEFAULT_CHUNK,
    periods: Sequence[int] = PERIODS,
) -> tuple[int, int, int | None]:
    """:func:`roll_up_readings` for score batches: (batches added, of which orphans, the
    last id looked at). An orphan's readings batch is gone (pruned before rollups
    existed): it is marked rolled up with nothing to add, as its reading times are lost."""
    candidates = _candidates(connection, _SCORES, before, after_id, chunk)
    if not candidates:
        return 0, 0, None
    claimed = _claim(connection, _SCORES, candidates)
    orphans = 0
    if claimed:
        rows = connection.execute(
            select(
                _SCORES.c.machine_id,
                _SCORES.c.role,
                _SCORES.c.scores,
                _SCORES.c.threshold,
                _SCORES.c.model_version,
                _READINGS.c.timestamps_us,
            )
            .join(_READINGS, readings_of(_SCORES.c, _READINGS.c), isouter=True)
            .where(_SCORES.c.id.in_(claimed), *_span(_SCORES, candidates))
        ).all()
        orphans = sum(r.timestamps_us is None for r in rows)
        frame = score_aggregates(
            (
                (
                    r.machine_id,
                    r.role,
                    unpack_times(r.timestamps_us),
                    unpack(r.scores, "f8"),
                    r.threshold,
                    r.model_version,
                )
                for r in rows
                if r.timestamps_us is not None
            ),
            periods,
        )
        _upsert(connection, _SCORE_ROLLUPS, frame, SCORE_KEYS, _add_scores)
    return len(claimed), orphans, max(i for i, _ in candidates)


def _candidates(
    connection: Connection, table: Table, before: datetime, after_id: int, chunk: int
) -> list[tuple[int, datetime]]:
    """(id, t_start) of the next ``chunk`` batches not rolled up that ended before
    ``before``, by id (the partial index over batches not rolled up)."""
    query = (
        select(table.c.id, table.c.t_start)
        .where(~table.c.rolled_up, table.c.t_end < before, table.c.id > after_id)
        .order_by(table.c.id)
        .limit(chunk)
    )
    return [(int(i), t) for i, t in connection.execute(query)]


def _span(table: Table, candidates: Sequence[tuple[int, datetime]]) -> list[Any]:
    """Bounds on ``t_start`` of the candidates: PostgreSQL then looks only into their day
    partitions."""
    starts = [t for _, t in candidates]
    return [table.c.t_start >= min(starts), table.c.t_start <= max(starts)]


def _claim(
    connection: Connection, table: Table, candidates: Sequence[tuple[int, datetime]]
) -> list[int]:
    """Mark the candidates rolled up unless another run did; the ids marked now."""
    claimed = connection.execute(
        update(table)
        .where(table.c.id.in_([i for i, _ in candidates]), ~table.c.rolled_up)
        .where(*_span(table, candidates))
        .values(rolled_up=True)
        .returning(table.c.id)
    )
    return [int(i) for i in claimed.scalars()]


def _larger(connection: Connection, a: Any, b: Any) -> Any:
    name = "greatest" if connection.dialect.name == "postgresql" else "max"
    return getattr(func, name)(a, b)


def _smaller(connection: Connection, a: Any, b: Any) -> Any:
    name = "least" if connection.dialect.name == "postgresql" else "min"
    return getattr(func, name)(a, b)


def _add_readings(connection: Connection, old: Table, new: Any) -> dict[str, Any]:
    return {
        "n": old.c.n + new.n,
        "total": old.c.total + new.total,
        "minimum": _smaller(connection, old.c.minimum, new.minimum),
        "maximum": _larger(connection, old.c.maximum, new.maximum),
    }


def _add_scores(connection: Connection, old: Table, new: Any) -> dict[str, Any]:
    lower, higher = new.score_min < old.c.score_min, new.score_max > old.c.score_max
    return {
        "n": old.c.n + new.n,
        "n_flagged": old.c.n_flagged + new.n_flagged,
        "score_min": case((lower, new.score_min), else_=old.c.score_min),
        "min_at": case((lower, new.min_at), else_=old.c.min_at),
        "score_max": case((higher, new.score_max), else_=old.c.score_max),
        "max_at": case((higher, new.max_at), else_=old.c.max_at),
        "threshold": case((higher, new.threshold), else_=old.c.threshold),
        "model_version": case((higher, new.model_version), else_=old.c.model_version),
    }


def _upsert(
    connection: Connection,
    table: Table,
    frame: pd.DataFrame,
    keys: Sequence[str],
    add: Callable[[Connection, Table, Any], dict[str, Any]],
) -> None:
    """Insert the aggregates of ``frame`` (one row per key), adding each to the row
    already there (``add``)."""
    if frame.empty:
        return
    rows = _rows(frame)
    dialect_insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(table)
    index = [("bucket" if k == "bucket_us" else k) for k in keys]
    statement = statement.on_conflict_do_update(
        index_elements=index, set_=add(connection, table, statement.excluded)
    )
    for first in range(0, len(rows), 5_000):
        connection.execute(statement, rows[first : first + 5_000])


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The table rows of an aggregates frame: times as datetimes, numbers as Python's."""
    out = frame.rename(
        columns={"bucket_us": "bucket", "min_at_us": "min_at", "max_at_us": "max_at"}
    )
    columns: dict[str, list[Any]] = {}
    for name in out.columns:
        values = out[name].to_numpy()
        if name in ("bucket", "min_at", "max_at"):
            columns[name] = us_to_datetimes(values.astype(np.int64))
        elif name in ("period_s", "n", "n_flagged", "model_version"):
            columns[name] = [int(v) for v in values]
        elif name in ("machine_id", "sensor", "role"):
            columns[name] = [str(v) for v in values]
        else:
            columns[name] = [float(v) for v in values]
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]
