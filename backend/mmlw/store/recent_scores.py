"""The newest champion-scored readings of machines: what alert rules and the drift
test's replay look at after every scored batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import Connection, Row, Select, Table, select, true

from mmlw.store.database import Database
from mmlw.store.packing import datetime_to_us
from mmlw.store.score_rows import STORED_COLUMNS, StoredScores, stored_scores
from mmlw.store.tables import Machine, ReadingBatch, ScoreBatch, readings_of

__all__ = ["FIRST_PAGE", "RecentScores", "RecentScoresReader"]

_SCORES = cast(Table, ScoreBatch.__table__)
#: the newest score batches :meth:`RecentScoresReader.recent_many` reads per machine at once
FIRST_PAGE = 2


@dataclass(frozen=True)
class RecentScores:
    """A machine's newest champion-scored readings, oldest first, one row per reading."""

    columns: list[str]
    timestamps_us: np.ndarray
    scores: np.ndarray
    thresholds: np.ndarray
    versions: np.ndarray
    contributions: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


class RecentScoresReader:
    def __init__(self, database: Database) -> None:
        self._db = database

    def recent(self, machine_id: str, n: int) -> RecentScores | None:
        """The newest ``n`` champion-scored readings of a machine (None: none scored), of
        the columns of its newest batch.

        Reads batches newest first (by ``t_end``), two at first, then at least twice as
        many each time, until they hold ``n`` readings and the next batch ends before the
        oldest of the ``n`` newest read (batches may overlap in time): usually one."""
        if n < 1:
            return None
        parts: list[StoredScores] = []
        total, page = 0, FIRST_PAGE  # one read for the usual "newest batch + a few before"
        while True:
            read, following = self._newest(machine_id, offset=len(parts), limit=page)
            parts.extend(read)
            total += sum(len(p.scores) for p in read)
            if following is None or (total >= n and not _may_hold_newer(parts, n, following)):
                break
            # twice as many, or enough for the rest if the next batches are as large
            page = max(2 * page, -(-(n - total) // max(1, total // len(parts))))
        return _newest_readings(parts, n)

    def recent_many(self, wanted: Mapping[str, int]) -> dict[str, RecentScores | None]:
        """:meth:`recent` of many machines (machine: ``n``). On PostgreSQL in two queries
        for all of them when each one's newest :data:`FIRST_PAGE` batches hold its ``n``
        readings (the usual case; a machine that needs more is read on its own); elsewhere
        (SQLite, the embedded default) one machine after another."""
        wanted = {m: n for m, n in wanted.items() if n >= 1}
        if len(wanted) < 2 or self._db.engine.dialect.name != "postgresql":
            return {m: self.recent(m, n) for m, n in wanted.items()}
        pages = self._newest_of(list(wanted), FIRST_PAGE)
        out: dict[str, RecentScores | None] = {}
        for machine_id, n in wanted.items():
            parts, following = pages.get(machine_id, ([], None))
            total = sum(len(p.scores) for p in parts)
            if following is not None and (total < n or _may_hold_newer(parts, n, following)):
                out[machine_id] = self.recent(machine_id, n)
            else:
                out[machine_id] = _newest_readings(parts, n)
        return out

    def _newest_of(
        self, machine_ids: Sequence[str], limit: int
    ) -> dict[str, tuple[list[StoredScores], datetime | None]]:
        """:meth:`_newest` (offset 0) of many machines: the newest ``limit + 1`` champion
        score batches of each (a lateral join, ``limit + 1`` index rows per machine),
        then the scores of ``limit`` of each (:func:`_scores_of`)."""
        machines = select(Machine.id).where(Machine.id.in_(machine_ids)).subquery("m")
        page = _page_of(_SCORES.c.machine_id == machines.c.id).limit(limit + 1).lateral("page")
        heads = select(machines.c.id.label("machine_id"), page).join(page, true())
        with self._db.engine.connect() as connection:
            found: dict[str, list[Row[Any]]] = {}
            for row in connection.execute(heads):
                found.setdefault(row.machine_id, []).append(row)
            for rows in found.values():
                rows.sort(key=lambda r: (r.t_end, r.id), reverse=True)
            stored = _scores_of(
                connection, [row for rows in found.values() for row in rows[:limit]]
            )
        return {machine_id: _paged(rows, limit, stored) for machine_id, rows in found.items()}

    def _newest(
        self, machine_id: str, *, offset: int, limit: int
    ) -> tuple[list[StoredScores], datetime | None]:
        """Champion score batches newest first (by ``t_end``) and where the batch after
        the last of them ends (None: none after it): the ``limit + 1`` narrow index rows
        of the page (the extra one only for its end), never the machine's history, then
        the scores of ``limit`` of them (:func:`_scores_of`)."""
        page = _page_of(_SCORES.c.machine_id == machine_id).offset(offset).limit(limit + 1)
        with self._db.engine.connect() as connection:
            rows = list(connection.execute(page))
            stored = _scores_of(connection, rows[:limit])
        return _paged(rows, limit, stored)


def _page_of(machine: Any) -> Select[Any]:
    """The ids, ends and starts of a machine's champion score batches, newest first."""
    return (
        select(_SCORES.c.id, _SCORES.c.t_end, _SCORES.c.t_start)
        .where(machine, _SCORES.c.role == "champion")
        .order_by(_SCORES.c.t_end.desc(), _SCORES.c.id.desc())
    )


def _scores_of(connection: Connection, heads: Sequence[Row[Any]]) -> dict[int, StoredScores]:
    """The scores, with their reading times, of the score batches ``heads`` (rows with
    ``id`` and ``t_start``), by id: by id and day partition (:func:`readings_of`), in a
    query of its own and sorted in Python. Paging and reading the wide columns in one
    query, ordered in SQL, let the planner sort whole partitions once a machine had a
    few thousand batches: a 4-machine fleet's scorers stalled after 2 million readings."""
    if not heads:
        return {}
    starts = {row.t_start for row in heads}
    readings = cast(Table, ReadingBatch.__table__)
    wide = (
        select(*(_SCORES.c[name] for name in STORED_COLUMNS), readings.c.timestamps_us)
        .join(readings, readings_of(_SCORES.c, readings.c))
        .where(
            _SCORES.c.id.in_([row.id for row in heads]),
            _SCORES.c.t_start.in_(starts),
            readings.c.t_start.in_(starts),
        )
    )
    rows = connection.execute(wide.add_columns(_SCORES.c.id))
    return {row.id: stored_scores(row, row.timestamps_us) for row in rows}


def _paged(
    rows: Sequence[Row[Any]], limit: int, stored: Mapping[int, StoredScores]
) -> tuple[list[StoredScores], datetime | None]:
    """The scores of the first ``limit`` of ``rows`` (a page, newest first, with one row
    more if there is one) and the end of that one more (None: the page was the last)."""
    parts = [stored[row.id] for row in rows[:limit] if row.id in stored]
    return parts, (rows[limit].t_end if len(rows) > limit else None)


def _newest_readings(parts: Sequence[StoredScores], n: int) -> RecentScores | None:
    """The newest ``n`` readings of ``parts`` (score batches, newest first) of the
    newest batch's columns, oldest first."""
    if not parts:
        return None
    columns = parts[0].columns
    parts = [p for p in parts if p.columns == columns]
    timestamps = np.concatenate([p.timestamps_us for p in parts])
    order = np.argsort(timestamps, kind="stable")[-n:]
    return RecentScores(
        columns=columns,
        timestamps_us=timestamps[order],
        scores=np.concatenate([p.scores for p in parts])[order],
        thresholds=np.concatenate([np.full(len(p.scores), p.threshold) for p in parts])[order],
        versions=np.concatenate([np.full(len(p.scores), p.model_version) for p in parts])[order],
        contributions=np.concatenate([p.contributions for p in parts])[order],
    )


def _may_hold_newer(parts: Sequence[StoredScores], n: int, t_end: datetime) -> bool:
    """Whether a batch ending at ``t_end`` may hold one of the ``n`` newest readings of
    ``parts`` of the first part's columns (not if those are fewer than ``n``)."""
    columns = parts[0].columns
    stamps = np.concatenate([p.timestamps_us for p in parts if p.columns == columns])
    if len(stamps) < n:
        return False
    oldest_kept = np.partition(stamps, len(stamps) - n)[len(stamps) - n]
    return datetime_to_us(t_end) >= oldest_kept
