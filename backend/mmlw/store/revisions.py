"""Compare-and-set of many rows at once: rows that carry a ``revision`` are updated only
if it is still the one they were read at, in one statement.

On PostgreSQL the rows travel as one JSON parameter, turned back into rows of the table's
own type by ``json_populate_recordset``: one ``UPDATE ... FROM`` whatever their number,
compiled once per table and columns. An executemany sends one ``UPDATE`` per row (each
executed on its own by the server): on a fleet of 1,000 machines the stream checkpoints
and drift states of a round (~100 machines each) were 14 % of a scorer's round. SQLite
(the embedded default) keeps the executemany.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Table, TextClause, bindparam, text, update

__all__ = ["update_if_unchanged"]


def update_if_unchanged(
    connection: Connection,
    table: Table,
    changes: Sequence[tuple[Mapping[str, Any], Mapping[str, Any], int]],
) -> bool:
    """For each (key columns, new values, expected revision): set the values and
    ``revision = expected + 1`` on the row with that key if its revision is still
    ``expected``. Every change names the same columns, and each row at most once. True
    if every row matched; False if one had moved (the caller rolls its transaction back)."""
    if not changes:
        return True
    keys, values, _ = changes[0]
    if connection.dialect.name == "postgresql":
        statement = _populated_update(table.name, tuple(keys), tuple(values))
        rows = [{**key, **new, "revision": expected} for key, new, expected in changes]
        found = connection.execute(statement, {"rows": json.dumps(rows, default=_json_value)})
        return bool(found.rowcount == len(rows))
    executemany = (
        update(table)
        .where(
            *(table.c[name] == bindparam(f"key_{name}") for name in keys),
            table.c.revision == bindparam("key_revision"),
        )
        .values({name: bindparam(f"new_{name}") for name in (*values, "revision")})
    )
    params = [
        {f"key_{k}": v for k, v in key.items()}
        | {f"new_{k}": v for k, v in new.items()}
        | {"key_revision": expected, "new_revision": expected + 1}
        for key, new, expected in changes
    ]
    return bool(connection.execute(executemany, params).rowcount == len(params))


@cache
def _populated_update(table: str, keys: tuple[str, ...], values: tuple[str, ...]) -> TextClause:
    """``UPDATE table`` from the rows of one JSON parameter ``rows`` (each with the key
    columns, the new values and the expected ``revision``). Names come from the schema,
    never from data."""
    assignments = ", ".join(f"{name} = v.{name}" for name in values)
    matches = " AND ".join(f"t.{name} = v.{name}" for name in (*keys, "revision"))
    return text(
        f"UPDATE {table} AS t SET {assignments}, revision = v.revision + 1 "
        f"FROM json_populate_recordset(NULL::{table}, CAST(:rows AS json)) AS v "
        f"WHERE {matches}"
    )


def _json_value(value: object) -> object:
    """A column value JSON cannot hold, as PostgreSQL reads it back into its column:
    ``bytea`` as hex, timestamps as ISO 8601 (timezone-aware values only)."""
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in a JSON row")
