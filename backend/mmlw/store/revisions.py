"""Compare-and-set of many rows at once: rows that carry a ``revision`` are updated only
if it is still the one they were read at, in one executemany statement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, update

__all__ = ["update_if_unchanged"]


def update_if_unchanged(
    connection: Connection,
    table: Table,
    changes: Sequence[tuple[Mapping[str, Any], Mapping[str, Any], int]],
) -> bool:
    """For each (key columns, new values, expected revision): set the values and
    ``revision = expected + 1`` on the row with that key if its revision is still
    ``expected``. Every change names the same columns. True if every row matched; False
    if one had moved (the caller rolls its transaction back)."""
    if not changes:
        return True
    keys, values, _ = changes[0]
    statement = (
        update(table)
        .where(
            *(table.c[name] == bindparam(f"key_{name}") for name in keys),
            table.c.revision == bindparam("key_revision"),
        )
        .values({name: bindparam(f"new_{name}") for name in (*values, "revision")})
    )
    rows = [
        {f"key_{k}": v for k, v in key.items()}
        | {f"new_{k}": v for k, v in new.items()}
        | {"key_revision": expected, "new_revision": expected + 1}
        for key, new, expected in changes
    ]
    return bool(connection.execute(statement, rows).rowcount == len(rows))
