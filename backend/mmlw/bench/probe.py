"""Read-only questions the bench asks the store: how much is stored and scored, and when.

"Scored" means scored by the champion (a challenger's shadow scores are rows of their own).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text

from mmlw.registry.base import CHAMPION
from mmlw.store import Store
from mmlw.store.tables import DeadLetter, ReadingBatch, ScoreBatch

__all__ = ["STORED_TABLES", "Counts", "StoreProbe"]

#: what a stored reading costs: its batch, the batch's idempotency key, its scores
STORED_TABLES = ("reading_batches", "reading_batch_keys", "score_batches")
#: what :meth:`StoreProbe.storage_bytes` measures of each
_PARTS = ("heap", "toast", "indexes")


@dataclass(frozen=True)
class Counts:
    readings: int
    batches: int
    scored: int
    score_batches: int
    dead_letters: int


class StoreProbe:
    """Counts rows above a mark, so one database serves several phases of a run."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def mark(self) -> tuple[int, int]:
        """The highest reading-batch and score-batch ids so far."""
        with self._store.database.session() as session:
            readings = session.scalar(select(func.coalesce(func.max(ReadingBatch.id), 0)))
            scores = session.scalar(select(func.coalesce(func.max(ScoreBatch.id), 0)))
        return int(readings or 0), int(scores or 0)

    def counts(self, since: tuple[int, int] = (0, 0)) -> Counts:
        readings_mark, _ = since
        with self._store.database.session() as session:
            readings, batches = session.execute(
                select(func.coalesce(func.sum(ReadingBatch.n), 0), func.count()).where(
                    ReadingBatch.id > readings_mark
                )
            ).one()
            # the scores *of this run's readings*: batches stored before the mark that a
            # scorer streams during the run (a machine's history, on its first message)
            # are not the run's work, and would end a run early
            scored, score_batches = session.execute(
                select(func.coalesce(func.sum(ScoreBatch.n), 0), func.count()).where(
                    ScoreBatch.batch_id > readings_mark, ScoreBatch.role == CHAMPION
                )
            ).one()
            dead = session.scalar(select(func.count()).select_from(DeadLetter))
        return Counts(int(readings), int(batches), int(scored), int(score_batches), int(dead or 0))

    def scored_at(self, since: tuple[int, int] = (0, 0)) -> dict[str, datetime]:
        """message_id -> when its scores were stored (the first time, if several)."""
        query = (
            select(ReadingBatch.message_id, func.min(ScoreBatch.scored_at))
            .join(ScoreBatch, ScoreBatch.batch_id == ReadingBatch.id)
            .where(ReadingBatch.id > since[0], ScoreBatch.role == CHAMPION)
            .group_by(ReadingBatch.message_id)
        )
        with self._store.database.session() as session:
            return {message_id: at for message_id, at in session.execute(query)}

    def storage_bytes(self) -> dict[str, int] | None:
        """Bytes on disk of each table of :data:`STORED_TABLES`, every partition summed,
        by part: ``"<table>.heap"`` (rows), ``"<table>.toast"`` (values stored out of
        line, with their index) and ``"<table>.indexes"``, from PostgreSQL's own size
        functions; None on SQLite."""
        if self._store.database.dialect != "postgresql":
            return None
        query = text(
            "SELECT COALESCE(SUM(pg_relation_size(relid)), 0),"
            " COALESCE(SUM(pg_table_size(relid) - pg_relation_size(relid)), 0),"
            " COALESCE(SUM(pg_indexes_size(relid)), 0) "
            "FROM pg_partition_tree(CAST(:table AS regclass))"
        )
        sizes: dict[str, int] = {}
        with self._store.database.session() as session:
            for table in STORED_TABLES:
                parts = session.execute(query, {"table": table}).one()
                sizes |= {f"{table}.{p}": int(b) for p, b in zip(_PARTS, parts, strict=True)}
        return sizes

    def stored_message_ids(self, since: tuple[int, int] = (0, 0)) -> set[str]:
        query = select(ReadingBatch.message_id).where(ReadingBatch.id > since[0])
        with self._store.database.session() as session:
            return set(session.scalars(query))
