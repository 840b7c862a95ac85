"""Readings, stored one row per batch; idempotent on the batch's ``message_id``.

Ingest writes many batches per transaction (:meth:`ReadingsRepository.add_many`): one
multi-row insert, and one counter update per machine. A ``message_id`` that is stored
already is a duplicate only if the content is the same (machine, columns, times, values,
labels); with other content it is *reused*, and the batch is not stored. A time range is
read back by :mod:`mmlw.store.windows`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Table,
    bindparam,
    case,
    delete,
    exists,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mmlw.errors import NotFound
from mmlw.schemas.readings import ReadingsBatch
from mmlw.schemas.readings_arrays import ReadingsArrays
from mmlw.store.batch_keys import insert_new_batches
from mmlw.store.compact import pack_times, pack_values, unpack_times, unpack_values
from mmlw.store.database import Database
from mmlw.store.packing import pack, unpack, us_to_datetimes
from mmlw.store.tables import Machine, ReadingBatch, ScoreBatch, UtcDateTime, utcnow
from mmlw.store.unnested import create_machines
from mmlw.store.windows import aligned_window, count_in_range, stacked_window

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["IngestOutcome", "ReadingsRepository", "StoredBatch", "count_in_range", "decode_batch"]


@dataclass(frozen=True)
class IngestOutcome:
    """What storing one batch did: ``created`` it as ``batch_id``, found it stored already
    (a duplicate), or found its ``message_id`` stored for other content (``reused``:
    nothing stored; ``batch_id`` is the other batch)."""

    batch_id: int
    created: bool
    reused: bool = False


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
        import pandas as pd  # imported on use: commands that only list the store skip it

        index = pd.to_datetime(self.timestamps_us, unit="us", utc=True)
        return pd.DataFrame(self.values, columns=self.columns, index=index)

    def to_batch(self) -> ReadingsBatch:
        """The wire message of this batch again (same ``message_id``): replayable."""
        return ReadingsBatch.of_rows(
            self.machine_id,
            self.columns,
            us_to_datetimes(self.timestamps_us),
            self.values.tolist(),
            None if self.labels is None else self.labels.tolist(),
        ).model_copy(update={"message_id": uuid.UUID(self.message_id)})


def decode_batch(row: Any) -> StoredBatch:
    """A stored batch from an ORM object or a Core row of ``reading_batches``."""
    timestamps = unpack_times(row.timestamps_us)
    return StoredBatch(
        id=row.id,
        machine_id=row.machine_id,
        message_id=row.message_id,
        columns=list(row.columns),
        timestamps_us=timestamps,
        values=unpack_values(row.values, len(timestamps), len(row.columns)),
        labels=None if row.labels is None else unpack(row.labels, "i1"),
    )


def _row(batch: ReadingsArrays, now: datetime) -> dict[str, Any]:
    """The ``reading_batches`` row of a batch (arrays packed)."""
    return {
        "machine_id": batch.machine_id,
        "message_id": batch.message_id,
        "received_at": now,
        "t_start": batch.t_start,
        "t_end": batch.t_end,
        "n": len(batch),
        "columns": list(batch.columns),
        "timestamps_us": pack_times(batch.timestamps_us),
        "values": pack_values(batch.values),
        "labels": None if batch.labels is None else pack(batch.labels, "i1"),
    }


def _insert_order(row: dict[str, Any]) -> tuple[Any, ...]:
    """Where a new batch goes among a buffer's: by machine, then time, then message id."""
    return row["machine_id"], row["t_start"], row["t_end"], row["message_id"]


_CONTENT = ("machine_id", "columns", "timestamps_us", "values", "labels")


def _same_content(row: dict[str, Any], other: Any) -> bool:
    """Whether a ``reading_batches`` row (dict) holds the same batch as ``other`` (a dict
    or a stored Core row): same machine, columns and packed arrays, byte for byte."""
    stored = other if isinstance(other, dict) else other._mapping

    def comparable(value: Any) -> Any:
        if isinstance(value, bytes | memoryview):
            return bytes(value)
        return list(value) if isinstance(value, list | tuple) else value

    return all(comparable(row[name]) == comparable(stored[name]) for name in _CONTENT)


def _dialect_insert(session: Session) -> Callable[..., Any]:
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _create_machines(session: Session, rows: Sequence[dict[str, Any]], now: datetime) -> set[str]:
    """Create the machines of ``rows`` that do not exist yet (one statement); their ids."""
    columns = {row["machine_id"]: row["columns"] for row in rows}
    ids = sorted(columns)
    if session.get_bind().dialect.name == "postgresql":
        params = {"ids": ids, "columns": [json.dumps(columns[m]) for m in ids], "now": now}
        return set(session.scalars(create_machines(), params))
    new = [
        {
            "id": machine_id,
            "columns": columns[machine_id],
            "first_seen": now,
            "last_seen": now,
            "last_reading_at": None,
            "n_readings": 0,
            "n_scored": 0,
        }
        for machine_id in ids
    ]
    insert = _dialect_insert(session)
    statement = insert(Machine).values(new).on_conflict_do_nothing(index_elements=["id"])
    return set(session.scalars(statement.returning(Machine.id)))


def _stored(session: Session, known: Sequence[str], ids: dict[str, int]) -> dict[str, Any]:
    """The stored content (Core rows) of the ``known`` message ids; adds their batch ids
    to ``ids``."""
    table = cast(Table, ReadingBatch.__table__)
    columns = [table.c[name] for name in ("id", "message_id", *_CONTENT)]
    content: dict[str, Any] = {}
    for stored in session.execute(select(*columns).where(table.c.message_id.in_(known))):
        ids[stored.message_id] = stored.id
        content[stored.message_id] = stored
    return content


def _count_readings(session: Session, created: Sequence[dict[str, Any]], now: datetime) -> None:
    """Add the created batches to their machines' counters: one statement for all
    machines, applied in id order so that concurrent consumers never deadlock."""
    per_machine: dict[str, dict[str, Any]] = {}
    for row in created:  # arrival order: the last batch's columns win
        entry = per_machine.setdefault(row["machine_id"], {"n": 0, "t_end": row["t_end"]})
        entry["n"] += row["n"]
        entry["t_end"] = max(entry["t_end"], row["t_end"])
        entry["columns"] = row["columns"]
    t_end = bindparam("t_end", type_=UtcDateTime())
    later = or_(Machine.last_reading_at.is_(None), Machine.last_reading_at < t_end)
    machines = cast(Table, Machine.__table__)  # Core: an executemany UPDATE with a WHERE
    statement = (
        update(machines)
        .where(machines.c.id == bindparam("machine_id"))
        .values(
            columns=bindparam("columns", type_=JSON()),
            last_seen=bindparam("now", type_=UtcDateTime()),
            last_reading_at=case((later, t_end), else_=Machine.last_reading_at),
            n_readings=Machine.n_readings + bindparam("n", type_=BigInteger()),
        )
    )
    session.connection().execute(
        statement,
        [
            {"machine_id": machine_id, "now": now, **per_machine[machine_id]}
            for machine_id in sorted(per_machine)
        ],
    )


def _outcomes(
    arrays: Sequence[ReadingsArrays],
    rows: dict[str, dict[str, Any]],
    held: dict[str, Any],
    ids: dict[str, int],
    *,
    new: set[str],
    now: datetime,
) -> list[IngestOutcome]:
    """The outcome of each batch of an :meth:`ReadingsRepository.add_many` call: reused if
    its content differs from what its message id holds (``held``), else created for the
    first occurrence of a ``new`` message id, else a duplicate. ``rows``: the rows of
    each message id's first occurrence."""
    outcomes = []
    seen: set[str] = set()
    for batch in arrays:
        message_id = batch.message_id
        row = _row(batch, now) if message_id in seen else rows[message_id]
        seen.add(message_id)
        if row is not held[message_id] and not _same_content(row, held[message_id]):
            outcomes.append(IngestOutcome(ids[message_id], created=False, reused=True))
            continue
        outcomes.append(IngestOutcome(ids[message_id], created=message_id in new))
        new.discard(message_id)
    return outcomes


class ReadingsRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, batch: ReadingsBatch | ReadingsArrays) -> IngestOutcome:
        """Store ``batch`` once: a second call with the same ``message_id`` stores nothing."""
        return self.add_many([batch])[0]

    def add_many(self, batches: Sequence[ReadingsBatch | ReadingsArrays]) -> list[IngestOutcome]:
        """Store many batches in one transaction, each once per ``message_id`` (also when
        repeated within ``batches``, or stored concurrently by another consumer). The
        ingest consumer hands over arrays (:mod:`mmlw.schemas.readings_arrays`); a
        validated :class:`ReadingsBatch` is converted first.

        Returns one outcome per batch, in order; ``created`` is True for exactly one
        occurrence of each newly stored message id; ``reused`` for a batch whose
        message id is stored with other content (stored before, or by its first
        occurrence in ``batches``), which is not stored. No query runs before the insert:
        ``INSERT .. ON CONFLICT DO NOTHING RETURNING`` of the message ids
        (:mod:`mmlw.store.batch_keys`) tells which rows are new; only the content of
        message ids that were known already is read back, to compare.
        """
        if not batches:
            return []
        now = utcnow()
        arrays = [ReadingsArrays.of(batch) for batch in batches]
        rows: dict[str, dict[str, Any]] = {}
        for batch in arrays:
            if batch.message_id not in rows:
                rows[batch.message_id] = _row(batch, now)
        # each machine's batches in time order (ids are the order its stream is scored
        # in), and one lock order for every consumer: the key is the message's own content
        candidates = sorted(rows.values(), key=_insert_order)
        with self._db.session() as session:
            new_machines = _create_machines(session, candidates, now)
            inserted = insert_new_batches(session, candidates)  # Core executemany
            ids = {message_id: batch_id for batch_id, message_id in inserted}
            if ids:
                _count_readings(session, [rows[m] for m in rows if m in ids], now)
            known = [m for m in rows if m not in ids]
            held: dict[str, Any] = {**rows, **(_stored(session, known, ids) if known else {})}
            # a machine first seen in a batch whose message_id was reused: not a machine
            orphans = new_machines - {rows[m]["machine_id"] for m in ids if m not in known}
            if orphans:
                session.execute(delete(Machine).where(Machine.id.in_(orphans)))
        return _outcomes(arrays, rows, held, ids, new=set(ids) - set(known), now=now)

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
        (batch,) = self.get_many([batch_id])
        return batch

    def get_many(self, batch_ids: Sequence[int]) -> list[StoredBatch]:
        """The batches with these ids, in that order, in one query; NotFound names the
        first id that is not stored."""
        table = ReadingBatch.__table__
        wanted = list(dict.fromkeys(int(i) for i in batch_ids))
        with self._db.engine.connect() as connection:
            rows = connection.execute(select(table).where(table.c.id.in_(wanted))).all()
        found = {row.id: row for row in rows}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise NotFound(f"readings batch {missing[0]} not found")
        return [decode_batch(found[int(i)]) for i in batch_ids]

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
        import pandas as pd  # imported on use: commands that only list the store skip it

        table = ReadingBatch.__table__
        query = select(table).where(table.c.machine_id == machine_id)
        if start is not None:
            query = query.where(table.c.t_end >= start)
        if end is not None:
            query = query.where(table.c.t_start < end)
        query = query.order_by(table.c.t_start.desc(), table.c.id.desc())
        rows: list[Any] = []  # Core rows of reading_batches, newest first
        count = 0
        with self._db.engine.connect() as connection:
            for row in connection.execution_options(yield_per=200).execute(query):
                rows.append(row)
                count += row.n
                if last_n is not None and count >= last_n + 2 * row.n:
                    break
        rows.reverse()
        if not rows:
            return pd.DataFrame(), None
        if not rows[0].columns or any(list(r.columns) != list(rows[0].columns) for r in rows):
            return aligned_window([decode_batch(r) for r in rows], start, end, last_n)
        return stacked_window(rows, start, end, last_n)

    def count_in_range(
        self, machine_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> int:
        """How many readings of a machine are in ``[start, end)`` (all without bounds),
        independent of any ``last_n``: see :func:`count_in_range`."""
        table = cast(Table, ReadingBatch.__table__)
        with self._db.engine.connect() as connection:
            return count_in_range(
                connection, table, table, [table.c.machine_id == machine_id], start, end
            )
