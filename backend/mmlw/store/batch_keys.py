"""Storing readings batches once per ``message_id``: the key first, then the batch.

``reading_batch_keys`` holds the unique key (a partitioned ``reading_batches`` cannot:
see :class:`~mmlw.store.tables.ReadingBatchKey`). Inserting the keys with ``ON CONFLICT
DO NOTHING RETURNING`` tells which batches are new, as the unique key on the batches
table did before; a concurrent writer of the same message id waits on the key's row
until the first commits, so one of them stores it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mmlw.store.tables import ReadingBatch, ReadingBatchKey

__all__ = ["insert_new_batches"]

_KEYS = cast(Table, ReadingBatchKey.__table__)
_BATCHES = cast(Table, ReadingBatch.__table__)


def insert_new_batches(session: Session, rows: Sequence[dict[str, Any]]) -> list[tuple[int, str]]:
    """Insert the ``reading_batches`` rows whose ``message_id`` is not stored yet (one
    row per message id in ``rows``, in a single lock order: sorted); ``(id,
    message_id)`` of the rows inserted now."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    connection = session.connection()
    new = set(
        connection.execute(
            dialect_insert(_KEYS)
            .on_conflict_do_nothing(index_elements=["message_id"])
            .returning(_KEYS.c.message_id),
            [{"message_id": row["message_id"], "t_start": row["t_start"]} for row in rows],
        ).scalars()
    )
    fresh = [row for row in rows if row["message_id"] in new]
    if not fresh:
        return []
    inserted = connection.execute(
        insert(_BATCHES).returning(_BATCHES.c.id, _BATCHES.c.message_id), fresh
    ).all()
    return [(int(batch_id), str(message_id)) for batch_id, message_id in inserted]
