"""Readings, stored one row per batch; idempotent on the batch's ``message_id``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from backend.errors import NotFound
from backend.schemas.readings import ReadingsBatch
from backend.store.database import Database
from backend.store.machines import touch_machine
from backend.store.packing import datetimes_to_us, pack, unpack
from backend.store.tables import ReadingBatch, ScoreBatch, utcnow

__all__ = ["IngestOutcome", "ReadingsRepository", "StoredBatch"]


@dataclass(frozen=True)
class IngestOutcome:
    batch_id: int
    created: bool


@dataclass(frozen=True)
class StoredBatch:
    id: int
    machine_id: str
    message_id: str
    columns: list[str]
    timestamps_us: np.ndarray
    values: np.ndarray
    labels: np.ndarray | None

    def frame(self) -> pd.DataFrame:
        """Values as a DataFrame indexed by UTC time, one column per sensor."""
        index = pd.to_datetime(self.timestamps_us, unit="us", utc=True)
        return pd.DataFrame(self.values, columns=self.columns, index=index)


def _decode(row: ReadingBatch) -> StoredBatch:
    return StoredBatch(
        id=row.id,
        machine_id=row.machine_id,
        message_id=row.message_id,
        columns=list(row.columns),
        timestamps_us=unpack(row.timestamps_us, "i8"),
        values=unpack(row.values, "f8", len(row.columns)),
        labels=None if row.labels is None else unpack(row.labels, "i1"),
    )


class ReadingsRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, batch: ReadingsBatch) -> IngestOutcome:
        """Store ``batch`` once: a second call with the same ``message_id`` stores nothing."""
        message_id = str(batch.message_id)
        existing = self.find_id(message_id)
        if existing is not None:
            return IngestOutcome(existing, created=False)
        timestamps = datetimes_to_us(batch.timestamps)
        values = np.asarray(batch.values, dtype=np.float64)
        now = utcnow()
        try:
            with self._db.session() as session:
                t_first, t_last = min(batch.timestamps), max(batch.timestamps)
                touch_machine(
                    session, batch.machine_id, list(batch.columns), now, t_last, len(batch)
                )
                row = ReadingBatch(
                    machine_id=batch.machine_id,
                    message_id=message_id,
                    received_at=now,
                    t_start=t_first,
                    t_end=t_last,
                    n=len(batch),
                    columns=list(batch.columns),
                    timestamps_us=pack(timestamps, "i8"),
                    values=pack(values, "f8"),
                    labels=None if batch.labels is None else pack(np.asarray(batch.labels), "i1"),
                )
                session.add(row)
                session.flush()
                batch_id = row.id
        except IntegrityError:
            existing = self.find_id(message_id)
            if existing is None:
                raise
            return IngestOutcome(existing, created=False)
        return IngestOutcome(batch_id, created=True)

    def find_id(self, message_id: str) -> int | None:
        with self._db.session() as session:
            return session.scalar(
                select(ReadingBatch.id).where(ReadingBatch.message_id == message_id)
            )

    def unscored_ids(self, machine_id: str, role: str = "champion", limit: int = 5000) -> list[int]:
        """Ids of the machine's newest batches without a ``role`` score, oldest first."""
        scored = exists().where(ScoreBatch.batch_id == ReadingBatch.id, ScoreBatch.role == role)
        query = (
            select(ReadingBatch.id)
            .where(ReadingBatch.machine_id == machine_id, ~scored)
            .order_by(ReadingBatch.id.desc())
            .limit(limit)
        )
        with self._db.session() as session:
            return sorted(session.scalars(query))

    def get(self, batch_id: int) -> StoredBatch:
        with self._db.session() as session:
            row = session.get(ReadingBatch, batch_id)
            if row is None:
                raise NotFound(f"readings batch {batch_id} not found")
            return _decode(row)

    def window(
        self,
        machine_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        last_n: int | None = None,
    ) -> tuple[pd.DataFrame, pd.Series | None]:
        """Readings in ``[start, end)``, oldest first, optionally only the newest ``last_n``.

        Returns the values (columns aligned by name across batches; a sensor missing in
        a batch is NaN) and the labels (None when no batch in the window had labels).
        """
        query = select(ReadingBatch).where(ReadingBatch.machine_id == machine_id)
        if start is not None:
            query = query.where(ReadingBatch.t_end >= start)
        if end is not None:
            query = query.where(ReadingBatch.t_start < end)
        query = query.order_by(ReadingBatch.t_start.desc(), ReadingBatch.id.desc())
        batches: list[StoredBatch] = []
        rows = 0
        with self._db.session() as session:
            for row in session.scalars(query.execution_options(yield_per=200)):
                batches.append(_decode(row))
                rows += row.n
                if last_n is not None and rows >= last_n + 2 * row.n:
                    break
        batches.reverse()
        if not batches:
            return pd.DataFrame(), None
        frames = [b.frame() for b in batches]
        values = pd.concat(frames).sort_index(kind="stable")
        has_labels = any(b.labels is not None for b in batches)
        labels = None
        if has_labels:
            parts = [
                pd.Series(
                    b.labels if b.labels is not None else np.full(len(b.timestamps_us), -1),
                    index=f.index,
                )
                for b, f in zip(batches, frames, strict=True)
            ]
            labels = pd.concat(parts).sort_index(kind="stable").astype("int8")
        mask = np.ones(len(values), dtype=bool)
        if start is not None:
            mask &= values.index >= pd.Timestamp(start)
        if end is not None:
            mask &= values.index < pd.Timestamp(end)
        values = values[mask]
        labels = labels[mask] if labels is not None else None
        if last_n is not None:
            values = values.iloc[-last_n:]
            labels = labels.iloc[-last_n:] if labels is not None else None
        return values, labels
