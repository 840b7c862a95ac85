"""Scores, stored per readings batch and model version (idempotent on that pair)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import numpy as np
from sqlalchemy import Table, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from mmlw.store.compact import explained_rows, pack_contributions
from mmlw.store.database import Database
from mmlw.store.machines import MachinesRepository
from mmlw.store.packing import pack, unpack, us_to_datetimes
from mmlw.store.readings import StoredBatch, count_in_range
from mmlw.store.recent_scores import RecentScores, RecentScoresReader
from mmlw.store.score_rows import StoredScores, stored_scores
from mmlw.store.tables import ReadingBatch, ScoreBatch, readings_of, utcnow

__all__ = ["RecentScores", "ScoreRecord", "ScoresRepository", "StoredScores", "stored_scores"]

_SCORES = cast(Table, ScoreBatch.__table__)


@dataclass(frozen=True)
class ScoreRecord:
    """What a predict task hands to the store for one batch."""

    batch: StoredBatch
    model_name: str
    model_version: int
    role: str
    threshold: float
    scores: np.ndarray
    contributions: np.ndarray
    columns: list[str]


class ScoresRepository:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._recent = RecentScoresReader(database)

    def add(self, record: ScoreRecord) -> bool:
        """Store scores once per (batch, model version, role); False if already there."""
        (created,) = self.add_many([record])
        return created

    def add_many(self, records: Sequence[ScoreRecord]) -> list[bool]:
        """Store many batches' scores in one transaction: one look-up of what is already
        there, one multi-row insert, one counter update per machine. Idempotent like
        :meth:`add` (per record: True if stored now, False if it was already there); when
        a concurrent writer gets in between, each record is retried on its own."""
        if not records:
            return []
        try:
            with self._db.session() as session:
                return self.insert(session, records)
        except IntegrityError:
            if len(records) == 1:
                return [False]
            return [self.add_many([record])[0] for record in records]

    @classmethod
    def insert(cls, session: Session, records: Sequence[ScoreRecord]) -> list[bool]:
        """:meth:`add_many` inside the caller's transaction (no retry of its own: an
        IntegrityError from a concurrent writer reaches the caller)."""
        now = utcnow()
        done = cls._existing(session, records)
        rows, created, scored = [], [], Counter[str]()
        for record in records:
            key = _key(record)
            if key in done:
                created.append(False)
                continue
            done.add(key)
            rows.append(_score_row(record, now))
            created.append(True)
            if record.role == "champion":
                scored[record.batch.machine_id] += len(record.scores)
        if rows:
            session.connection().execute(insert(_SCORES), rows)  # Core
        MachinesRepository.add_scored(session, scored)
        return created

    @staticmethod
    def _existing(
        session: Session, records: Sequence[ScoreRecord]
    ) -> set[tuple[int, str, int, str]]:
        batch_ids = {record.batch.id for record in records}
        rows = session.execute(
            select(
                ScoreBatch.batch_id,
                ScoreBatch.model_name,
                ScoreBatch.model_version,
                ScoreBatch.role,
            ).where(ScoreBatch.batch_id.in_(batch_ids))
        )
        return {(r.batch_id, r.model_name, r.model_version, r.role) for r in rows}

    def query(
        self,
        machine_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        role: str = "champion",
        limit_batches: int = 10_000,
        last_n: int | None = None,
    ) -> list[StoredScores]:
        """Scored batches of a machine overlapping ``[start, end)``, oldest first; with
        ``last_n``, only the newest batches that hold its newest ``last_n`` readings (read
        newest first, stopping two batches past that count, as
        :meth:`~mmlw.store.readings.ReadingsRepository.window` does, so batches that
        overlap in time are not missed)."""
        query = (
            select(ScoreBatch, ReadingBatch.timestamps_us)
            .join(ReadingBatch, readings_of(ScoreBatch, ReadingBatch))
            .where(ScoreBatch.machine_id == machine_id, ScoreBatch.role == role)
        )
        if start is not None:
            query = query.where(ScoreBatch.t_end >= start)
        if end is not None:
            query = query.where(ScoreBatch.t_start < end)
        query = query.order_by(ScoreBatch.t_start.desc()).limit(limit_batches)
        out: list[StoredScores] = []
        count = 0
        with self._db.session() as session:
            for row, ts in session.execute(query.execution_options(yield_per=100)):
                out.append(stored_scores(row, ts))
                count += row.n
                if last_n is not None and count >= last_n + 2 * row.n:
                    break
        out.reverse()
        return out

    def recent(self, machine_id: str, n: int) -> RecentScores | None:
        """See :meth:`~mmlw.store.recent_scores.RecentScoresReader.recent`."""
        return self._recent.recent(machine_id, n)

    def recent_many(self, wanted: Mapping[str, int]) -> dict[str, RecentScores | None]:
        """See :meth:`~mmlw.store.recent_scores.RecentScoresReader.recent_many`."""
        return self._recent.recent_many(wanted)

    def paired_flags(
        self, machine_id: str, champion_version: int, challenger_version: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flags of the champion and of the shadow challenger on the batches both scored."""
        champion = aliased(ScoreBatch)
        challenger = aliased(ScoreBatch)
        query = (
            select(champion.scores, champion.threshold, challenger.scores, challenger.threshold)
            .join(challenger, challenger.batch_id == champion.batch_id)
            .where(
                champion.machine_id == machine_id,
                champion.role == "champion",
                champion.model_version == champion_version,
                challenger.role == "challenger",
                challenger.model_version == challenger_version,
            )
        )
        with self._db.session() as session:
            rows = session.execute(query).all()
        if not rows:
            return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
        champ = np.concatenate([unpack(a, "f8") > t for a, t, _, _ in rows])
        chal = np.concatenate([unpack(b, "f8") > t for _, _, b, t in rows])
        return champ, chal

    def version_at(self, machine_id: str, at: datetime) -> int | None:
        """The model version whose champion score covers the reading at ``at``."""
        query = (
            select(ScoreBatch.model_version)
            .where(
                ScoreBatch.machine_id == machine_id,
                ScoreBatch.role == "champion",
                ScoreBatch.t_start <= at,
                ScoreBatch.t_end >= at,
            )
            .order_by(ScoreBatch.scored_at)
            .limit(1)
        )
        with self._db.session() as session:
            return session.scalar(query)

    def count_since(self, machine_id: str, start: datetime) -> int:
        """Champion-scored readings in batches that start at or after ``start``."""
        query = select(func.coalesce(func.sum(ScoreBatch.n), 0)).where(
            ScoreBatch.machine_id == machine_id,
            ScoreBatch.role == "champion",
            ScoreBatch.t_start >= start,
        )
        with self._db.session() as session:
            return int(session.scalar(query) or 0)

    def count_in_range(
        self,
        machine_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        role: str = "champion",
    ) -> int:
        """How many ``role``-scored readings of a machine are in ``[start, end)``,
        independent of any ``last_n`` (see :func:`~mmlw.store.readings.count_in_range`)."""
        readings = cast(Table, ReadingBatch.__table__)
        where = [_SCORES.c.machine_id == machine_id, _SCORES.c.role == role]
        with self._db.engine.connect() as connection:
            return count_in_range(connection, _SCORES, readings, where, start, end)

    def count(self, machine_id: str | None = None, role: str = "champion") -> int:
        query = select(func.coalesce(func.sum(ScoreBatch.n), 0)).where(ScoreBatch.role == role)
        if machine_id is not None:
            query = query.where(ScoreBatch.machine_id == machine_id)
        with self._db.session() as session:
            return int(session.scalar(query) or 0)


def _key(record: ScoreRecord) -> tuple[int, str, int, str]:
    return (record.batch.id, record.model_name, record.model_version, record.role)


def _score_row(record: ScoreRecord, now: datetime) -> dict[str, object]:
    batch = record.batch
    contributions, rows = pack_contributions(
        record.contributions, explained_rows(record.scores, record.threshold)
    )
    return {
        "batch_id": batch.id,
        "machine_id": batch.machine_id,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "role": record.role,
        "threshold": record.threshold,
        "scored_at": now,
        "t_start": _from_us(int(batch.timestamps_us.min())),
        "t_end": _from_us(int(batch.timestamps_us.max())),
        "n": len(record.scores),
        "n_flagged": int((record.scores > record.threshold).sum()),
        "columns": record.columns,
        "scores": pack(record.scores, "f8"),
        "contributions": contributions,
        "contribution_rows": rows,
    }


def _from_us(value: int) -> datetime:
    return us_to_datetimes(np.array([value]))[0]
