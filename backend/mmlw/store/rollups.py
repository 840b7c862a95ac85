"""Rollups: per-minute and per-hour aggregates of readings and scores that outlive the
raw batches (tables in :mod:`mmlw.store.rollup_tables`, written by
:mod:`mmlw.store.rollup_writes`).

Every raw batch is in exactly one of two places for a read: in the rollups (its
``rolled_up`` flag is set) or not yet. :meth:`RollupsRepository.readings_window` and
:meth:`~RollupsRepository.scores_window` return both halves of a time range, read in one
snapshot on PostgreSQL, so a reader adds the raw half's aggregates to the rollups and
counts every reading once. Retention (:mod:`mmlw.store.retention`) keeps a batch until
it is rolled up.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
import sqlalchemy as sa
from sqlalchemy import BigInteger, String, Table, delete, func, select, tuple_, type_coerce
from sqlalchemy.engine import Connection

from mmlw.store.aggregates import PERIODS
from mmlw.store.database import Database
from mmlw.store.readings import StoredBatch, decode_batch
from mmlw.store.rollup_tables import ReadingRollupRow, ScoreRollupRow
from mmlw.store.rollup_writes import DEFAULT_CHUNK, roll_up_readings, roll_up_scores
from mmlw.store.scores import StoredScores, stored_scores
from mmlw.store.tables import ReadingBatch, ScoreBatch, readings_of

__all__ = [
    "ReadingRollups",
    "ReadingsWindow",
    "RolledUp",
    "RollupsRepository",
    "ScoreRollups",
    "ScoresWindow",
]

_READINGS = cast(Table, ReadingBatch.__table__)
_SCORES = cast(Table, ScoreBatch.__table__)
_READING_ROLLUPS = cast(Table, ReadingRollupRow.__table__)
_SCORE_ROLLUPS = cast(Table, ScoreRollupRow.__table__)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadingRollups:
    """One machine's rollups of one period, merged into buckets of ``width_s`` (a
    multiple of ``period_s``), column-wise, oldest bucket first: entry ``i`` is sensor
    ``sensors[i]`` over ``[buckets_us[i], buckets_us[i] + width_s)`` (microseconds since
    the epoch), whose first and last rollup periods with readings start at ``first_us[i]``
    and ``last_us[i]``. Columns, not one object per bucket: a week of minutes of eight
    sensors is 80 000 rollups, read for every drawing of a week."""

    machine_id: str
    period_s: int
    width_s: int
    sensors: list[str]
    buckets_us: np.ndarray
    n: np.ndarray
    total: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    first_us: np.ndarray
    last_us: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.n

    def __len__(self) -> int:
        return len(self.sensors)


@dataclass(frozen=True)
class ScoreRollups:
    """One machine's ``role`` score rollups of one period, column-wise, oldest bucket
    first; times in microseconds since the epoch."""

    machine_id: str
    role: str
    period_s: int
    buckets_us: np.ndarray
    n: np.ndarray
    n_flagged: np.ndarray
    score_min: np.ndarray
    min_at_us: np.ndarray
    score_max: np.ndarray
    max_at_us: np.ndarray
    threshold: np.ndarray
    model_version: np.ndarray

    def __len__(self) -> int:
        return len(self.buckets_us)


@dataclass(frozen=True)
class ReadingsWindow:
    """A machine's readings over a range: rollups, and the raw batches not rolled up."""

    rollups: ReadingRollups
    unrolled: list[StoredBatch]


@dataclass(frozen=True)
class ScoresWindow:
    """A machine's scores over a range: rollups, and the raw score batches not rolled up
    (whose readings are still stored: a batch is rolled up before they may go)."""

    rollups: ScoreRollups
    unrolled: list[StoredScores]


@dataclass(frozen=True)
class RolledUp:
    """What one rollup run added: readings and score batches (orphans: score batches
    whose readings were gone, marked rolled up with nothing to add)."""

    readings_batches: int = 0
    score_batches: int = 0
    orphan_score_batches: int = 0


class RollupsRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def roll_up(
        self, before: datetime, *, chunk: int = DEFAULT_CHUNK, periods: Sequence[int] = PERIODS
    ) -> RolledUp:
        """Add every batch (readings, then scores) whose last reading is before ``before``
        and that is not rolled up yet; one transaction per ``chunk`` batches. Idempotent:
        a second run adds nothing, a concurrent one adds other batches."""
        readings = scores = orphans = 0
        after: int | None = 0
        while after is not None:
            with self._db.engine.begin() as connection:
                added, after = roll_up_readings(
                    connection, before, after_id=after, chunk=chunk, periods=periods
                )
            readings += added
        after = 0
        while after is not None:
            with self._db.engine.begin() as connection:
                added, lost, after = roll_up_scores(
                    connection, before, after_id=after, chunk=chunk, periods=periods
                )
            scores, orphans = scores + added, orphans + lost
        if orphans:
            log.warning("rollups: %d score batches had no readings left to time them", orphans)
        return RolledUp(readings, scores, orphans)

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """One connection whose reads see one state of the database (PostgreSQL:
        repeatable read), so a rollup run committing meanwhile counts nothing twice."""
        with self._db.engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield connection

    def readings_window(
        self,
        machine_id: str,
        period_s: int,
        start: datetime | None,
        end: datetime | None,
        *,
        width_s: int | None = None,
    ) -> ReadingsWindow:
        """The ``period_s`` rollups of the buckets that overlap ``[start, end)`` (whole:
        the range widened to whole periods), merged by the database into buckets of
        ``width_s`` (default: one period each), and the readings batches not rolled up
        that overlap the range (whole: the reader cuts them)."""
        width_us = (width_s or period_s) * 1_000_000
        rollups = _READING_ROLLUPS
        epoch_us = _epoch_us(self._db.engine.dialect.name)
        bucket = sa.literal_column(f"({epoch_us} / {width_us}) * {width_us}", BigInteger)
        at = sa.literal_column(epoch_us, BigInteger)
        query = (
            select(
                rollups.c.sensor, bucket, sa.cast(func.sum(rollups.c.n), BigInteger),
                func.sum(rollups.c.total),
                func.min(rollups.c.minimum), func.max(rollups.c.maximum), func.min(at),
                func.max(at),
            )
            .where(rollups.c.machine_id == machine_id, rollups.c.period_s == period_s)
            .group_by(rollups.c.sensor, bucket)
        )  # fmt: skip
        query = _bucket_range(query, rollups, period_s, start, end).order_by(bucket)
        raw = select(_READINGS).where(_READINGS.c.machine_id == machine_id, ~_READINGS.c.rolled_up)
        raw = _overlapping(raw, _READINGS, start, end).order_by(_READINGS.c.id)
        with self._snapshot() as connection:
            columns = _columns(connection.execute(query).all(), 8)
            unrolled = [decode_batch(row) for row in connection.execute(raw)]
        sensors, buckets, n, total, minimum, maximum, first, last = columns
        found = ReadingRollups(
            machine_id, period_s, width_us // 1_000_000, [str(s) for s in sensors],
            np.asarray(buckets, dtype=np.int64), np.asarray(n, dtype=np.int64), _floats(total),
            _floats(minimum), _floats(maximum), np.asarray(first, dtype=np.int64),
            np.asarray(last, dtype=np.int64),
        )  # fmt: skip
        return ReadingsWindow(found, unrolled)

    def scores_window(
        self,
        machine_id: str,
        role: str,
        period_s: int,
        start: datetime | None,
        end: datetime | None,
    ) -> ScoresWindow:
        """:meth:`readings_window` for ``role`` scores."""
        rollups, dialect = _SCORE_ROLLUPS, self._db.engine.dialect.name
        query = select(
            _plain(rollups.c.bucket, dialect), rollups.c.n, rollups.c.n_flagged,
            rollups.c.score_min, _plain(rollups.c.min_at, dialect), rollups.c.score_max,
            _plain(rollups.c.max_at, dialect), rollups.c.threshold, rollups.c.model_version,
        ).where(
            rollups.c.machine_id == machine_id,
            rollups.c.role == role,
            rollups.c.period_s == period_s,
        )  # fmt: skip
        query = _bucket_range(query, rollups, period_s, start, end).order_by(rollups.c.bucket)
        raw = (
            select(_SCORES, _READINGS.c.timestamps_us.label("reading_times"))
            .join(_READINGS, readings_of(_SCORES.c, _READINGS.c))
            .where(_SCORES.c.machine_id == machine_id, _SCORES.c.role == role)
            .where(~_SCORES.c.rolled_up)
        )
        raw = _overlapping(raw, _SCORES, start, end).order_by(_SCORES.c.id)
        with self._snapshot() as connection:
            columns = _columns(connection.execute(query).all(), 9)
            unrolled = [stored_scores(row, row.reading_times) for row in connection.execute(raw)]
        buckets, n, flagged, low, low_at, high, high_at, threshold, version = columns
        found = ScoreRollups(
            machine_id, role, period_s, _us(buckets), np.asarray(n, dtype=np.int64),
            np.asarray(flagged, dtype=np.int64), _floats(low), _us(low_at), _floats(high),
            _us(high_at), _floats(threshold), np.asarray(version, dtype=np.int64),
        )  # fmt: skip
        return ScoresWindow(found, unrolled)

    def oldest_raw(self, machine_id: str) -> datetime | None:
        """When the machine's oldest stored readings batch starts (None: none stored)."""
        query = select(func.min(_READINGS.c.t_start)).where(_READINGS.c.machine_id == machine_id)
        with self._db.engine.connect() as connection:
            return cast(datetime | None, connection.scalar(query))

    def oldest(self, machine_id: str, period_s: int) -> datetime | None:
        """Where the machine's oldest ``period_s`` readings rollup starts (None: none)."""
        query = select(func.min(_READING_ROLLUPS.c.bucket)).where(
            _READING_ROLLUPS.c.machine_id == machine_id, _READING_ROLLUPS.c.period_s == period_s
        )
        with self._db.engine.connect() as connection:
            return cast(datetime | None, connection.scalar(query))

    def prune(self, period_s: int, horizon: datetime, *, batch_size: int = 10_000) -> int:
        """Delete the ``period_s`` rollups of buckets that end before ``horizon``, at most
        ``batch_size`` rows per table and transaction; how many rows went."""
        deleted = 0
        for table in (_READING_ROLLUPS, _SCORE_ROLLUPS):
            key = tuple_(*table.primary_key.columns)
            old = (
                select(*table.primary_key.columns)
                .where(table.c.period_s == period_s)
                .where(table.c.bucket < horizon - timedelta(seconds=period_s))
                .limit(batch_size)
            )
            while True:
                with self._db.engine.begin() as connection:
                    gone = connection.execute(delete(table).where(key.in_(old))).rowcount
                deleted += gone
                if gone < batch_size:
                    break
        return deleted


def _plain(column: Any, dialect: str) -> Any:
    """A time column read without :class:`UtcDateTime`'s conversion of each value:
    PostgreSQL's as microseconds since the epoch, SQLite's as its text (UTC), which
    :func:`_us` converts at once."""
    if dialect == "postgresql":
        return sa.cast(func.extract("epoch", column) * 1_000_000, BigInteger)
    return type_coerce(column, String())


def _epoch_us(dialect: str) -> str:
    """SQL of ``reading_rollups.bucket`` in microseconds since the epoch, as an integer
    (literal SQL: the same expression in the select list and GROUP BY, no parameters).
    Buckets are whole seconds, which SQLite's ``strftime('%s')`` is exact for."""
    if dialect == "postgresql":
        return "CAST(EXTRACT(epoch FROM reading_rollups.bucket) * 1000000 AS BIGINT)"
    return "(CAST(strftime('%s', reading_rollups.bucket) AS INTEGER) * 1000000)"


def _columns(rows: Sequence[Any], width: int) -> list[Sequence[Any]]:
    """Rows as ``width`` columns (empty ones when there are no rows)."""
    return list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]


def _us(times: Sequence[int | str]) -> np.ndarray:
    """Microseconds since the epoch of a column :func:`_plain` read."""
    if not times or not isinstance(times[0], str):
        return np.asarray(times, dtype=np.int64)
    import pandas as pd  # imported on use: commands that only list the store skip it

    return np.asarray(
        pd.to_datetime(np.asarray(times), format="ISO8601", utc=True).as_unit("us").asi8
    )


def _floats(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def _bucket_range(
    query: Any, table: Table, period_s: int, start: datetime | None, end: datetime | None
) -> Any:
    if start is not None:
        query = query.where(table.c.bucket > start - timedelta(seconds=period_s))
    if end is not None:
        query = query.where(table.c.bucket < end)
    return query


def _overlapping(query: Any, table: Table, start: datetime | None, end: datetime | None) -> Any:
    if start is not None:
        query = query.where(table.c.t_end >= start)
    if end is not None:
        query = query.where(table.c.t_start < end)
    return query
