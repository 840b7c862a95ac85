"""Machines: created on first contact, counters kept current by ingest and predict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import Row, Select, Table, bindparam, func, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mmlw.errors import NotFound
from mmlw.store.compact import unpack_times
from mmlw.store.database import Database
from mmlw.store.packing import unpack
from mmlw.store.tables import Machine, ReadingBatch, ScoreBatch, readings_of

__all__ = ["MachinesRepository", "NewestScores", "touch_machine"]

_MACHINES = cast(Table, Machine.__table__)
_SCORES = cast(Table, ScoreBatch.__table__)
_READINGS = cast(Table, ReadingBatch.__table__)


@dataclass(frozen=True)
class NewestScores:
    """A machine's newest champion scores, oldest first, one per reading; ``columns`` are
    those of its batch that ends last."""

    machine_id: str
    columns: list[str]
    timestamps_us: np.ndarray
    scores: np.ndarray
    thresholds: np.ndarray
    versions: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def touch_machine(
    session: Session,
    machine_id: str,
    columns: list[str],
    now: datetime,
    last_reading_at: datetime,
    n_readings: int,
) -> None:
    """Create the machine if new, then count ``n_readings`` more (one statement each)."""
    dialect = session.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        dialect_insert(Machine)
        .values(
            id=machine_id,
            columns=columns,
            first_seen=now,
            last_seen=now,
            last_reading_at=None,
            n_readings=0,
            n_scored=0,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )
    machine = session.get(Machine, machine_id, with_for_update=True)
    assert machine is not None
    machine.columns = columns
    machine.last_seen = now
    if machine.last_reading_at is None or last_reading_at > machine.last_reading_at:
        machine.last_reading_at = last_reading_at
    machine.n_readings += n_readings


class MachinesRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def recent(self, limit: int) -> list[str]:
        """Ids of the ``limit`` most recently seen machines, newest first."""
        with self._db.session() as session:
            query = select(Machine.id).order_by(Machine.last_seen.desc(), Machine.id).limit(limit)
            return list(session.scalars(query))

    def newest_scores(self, n: int) -> list[NewestScores]:
        """The newest ``n`` champion-scored readings of every machine that has any (by
        machine id), in one query whatever the number of machines: per machine, its
        score batches that end last until they hold ``n`` readings (at most ``n``
        batches, read through the ``(machine_id, role, t_end, id)`` index)."""
        if n < 1:
            return []
        picked = _newest_batches(self._db.engine.dialect.name, n).subquery("picked")
        query = (
            select(
                _SCORES.c.machine_id,
                _SCORES.c.model_version,
                _SCORES.c.threshold,
                _SCORES.c.columns,
                _SCORES.c.scores,
                _READINGS.c.timestamps_us,
            )
            .join(picked, picked.c.id == _SCORES.c.id)
            .join(_READINGS, readings_of(_SCORES.c, _READINGS.c))
            .where(func.coalesce(picked.c.before, 0) < n)
            .order_by(_SCORES.c.machine_id, _SCORES.c.t_end, _SCORES.c.id)
        )
        with self._db.engine.connect() as connection:
            rows: list[Row[Any]] = list(connection.execute(query))
        out: list[NewestScores] = []
        start = 0
        for end in range(1, len(rows) + 1):
            if end == len(rows) or rows[end].machine_id != rows[start].machine_id:
                out.append(_newest(rows[start:end], n))
                start = end
        return out

    def list(self) -> list[Machine]:
        with self._db.session() as session:
            return list(session.scalars(select(Machine).order_by(Machine.id)))

    def last_seen(self, machine_id: str) -> datetime:
        """When ``machine_id`` last sent readings (NotFound if it never did); one Core
        read, as alert rules ask it for every machine a predict task scores."""
        with self._db.engine.connect() as connection:
            seen = connection.scalar(select(Machine.last_seen).where(Machine.id == machine_id))
        if seen is None:
            raise NotFound(f"machine {machine_id!r} not found")
        return seen

    def last_seen_many(self, machine_ids: Sequence[str]) -> dict[str, datetime]:
        """:meth:`last_seen` of many machines in one read (unknown ones are left out)."""
        if not machine_ids:
            return {}
        query = select(Machine.id, Machine.last_seen).where(Machine.id.in_(machine_ids))
        with self._db.engine.connect() as connection:
            return {row.id: row.last_seen for row in connection.execute(query)}

    def get(self, machine_id: str) -> Machine:
        with self._db.session() as session:
            machine = session.get(Machine, machine_id)
        if machine is None:
            raise NotFound(f"machine {machine_id!r} not found")
        return machine

    @staticmethod
    def add_scored(session: Session, scored: Mapping[str, int]) -> None:
        """Count ``scored`` readings (machine: how many) in the caller's transaction: one
        executemany update whatever the number of machines."""
        if not scored:
            return
        statement = (
            update(_MACHINES)
            .where(_MACHINES.c.id == bindparam("key_machine"))
            .values(n_scored=_MACHINES.c.n_scored + bindparam("added"))
        )
        rows = [{"key_machine": m, "added": n} for m, n in sorted(scored.items())]
        session.connection().execute(statement, rows)


def _newest_batches(dialect: str, n: int) -> Select[tuple[int, int | None]]:
    """Per machine, the ids of its ``n`` champion score batches that end last, each with
    the readings in the batches that end after it (``before``; None for the last one).

    PostgreSQL reads each machine's batches with a LATERAL join; SQLite has none, and
    reads them through a correlated ``IN`` (which PostgreSQL would run for every batch)."""
    order = (_SCORES.c.t_end.desc(), _SCORES.c.id.desc())
    champion = _SCORES.c.role == "champion"
    if dialect == "postgresql":
        newest = (
            select(_SCORES.c.id, _SCORES.c.machine_id, _SCORES.c.t_end, _SCORES.c.n)
            .where(_SCORES.c.machine_id == _MACHINES.c.id, champion)
            .order_by(*order)
            .limit(n)
            .lateral("newest")
        )
        batches = select(newest).select_from(_MACHINES).join(newest, true()).subquery("batches")
    else:
        inner = _SCORES.alias("inner")
        ids = (
            select(inner.c.id)
            .where(inner.c.machine_id == _MACHINES.c.id, inner.c.role == "champion")
            .order_by(inner.c.t_end.desc(), inner.c.id.desc())
            .limit(n)
        )
        batches = (
            select(_SCORES.c.id, _SCORES.c.machine_id, _SCORES.c.t_end, _SCORES.c.n)
            .select_from(_MACHINES)
            .join(_SCORES, _SCORES.c.id.in_(ids))
            .subquery("batches")
        )
    before = func.sum(batches.c.n).over(
        partition_by=batches.c.machine_id,
        order_by=(batches.c.t_end.desc(), batches.c.id.desc()),
        rows=(None, -1),
    )
    return select(batches.c.id, before.label("before"))


def _newest(rows: Sequence[Row[Any]], n: int) -> NewestScores:
    """One machine's newest ``n`` readings of ``rows`` (its batches, the last ending last)."""
    scores = [unpack(row.scores, "f8") for row in rows]
    sizes = [len(s) for s in scores]
    timestamps = np.concatenate([unpack_times(row.timestamps_us) for row in rows])
    order = np.argsort(timestamps, kind="stable")[-n:]
    return NewestScores(
        machine_id=rows[-1].machine_id,
        columns=list(rows[-1].columns),
        timestamps_us=timestamps[order],
        scores=np.concatenate(scores)[order],
        thresholds=np.repeat([row.threshold for row in rows], sizes)[order],
        versions=np.repeat([row.model_version for row in rows], sizes)[order],
    )
