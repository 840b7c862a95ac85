"""Statements that take many machines' values as a few array parameters on PostgreSQL.

A statement built for N rows (an ``OR`` of N conditions, an ``INSERT`` of N ``VALUES``)
is a new statement for every N: SQLAlchemy builds and compiles it, and psycopg converts
it, every time. On a fleet each round names a different number of machines, and that
work was 15 % of a scorer's round (pending batches) and 47 % of an ingest flush's store
time (new machines). Here the rows are ``unnest``-ed from one array parameter per column,
so each statement is compiled once per process whatever the number of machines. SQLite
(the embedded default) keeps the portable form.
"""

from __future__ import annotations

from functools import cache
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Insert,
    Select,
    String,
    Table,
    Text,
    bindparam,
    func,
    literal,
    null,
    select,
    true,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql

from mmlw.store.tables import Machine, ReadingBatch, UtcDateTime

__all__ = ["create_machines", "pending_batches"]

_BATCHES = cast(Table, ReadingBatch.__table__)
_MACHINES = cast(Table, Machine.__table__)


@cache
def pending_batches() -> Select[Any]:
    """Per machine (``machines``, with ``afters`` and ``uptos``), its first ``limit``
    batches with ids in ``(after, upto]``, in id order (a LATERAL subquery per machine)."""
    ranges = (
        func.unnest(
            bindparam("machines", type_=postgresql.ARRAY(String)),
            bindparam("afters", type_=postgresql.ARRAY(BigInteger)),
            bindparam("uptos", type_=postgresql.ARRAY(BigInteger)),
        )
        .table_valued("machine_id", "after_id", "upto_id")
        .render_derived(name="r")
    )
    batches = (
        select(_BATCHES)
        .where(
            _BATCHES.c.machine_id == ranges.c.machine_id,
            _BATCHES.c.id > ranges.c.after_id,
            _BATCHES.c.id <= ranges.c.upto_id,
        )
        .order_by(_BATCHES.c.id)
        .limit(bindparam("limit"))
        .lateral("b")
    )
    return (
        select(batches)
        .select_from(ranges)
        .join(batches, true())
        .order_by(batches.c.machine_id, batches.c.id)
    )


@cache
def create_machines() -> Insert:
    """Create the machines ``ids`` (each with its ``columns``, a JSON text) that do not
    exist yet, seen first and last at ``now``; returns the ids created."""
    new = (
        func.unnest(
            bindparam("ids", type_=postgresql.ARRAY(String)),
            bindparam("columns", type_=postgresql.ARRAY(Text)),
        )
        .table_valued("id", "columns")
        .render_derived(name="m")
    )
    now = bindparam("now", type_=UtcDateTime())
    rows = select(new.c.id, sql_cast(new.c.columns, JSON), now, now, null(), literal(0), literal(0))
    names = ["id", "columns", "first_seen", "last_seen", "last_reading_at", "n_readings",
             "n_scored"]  # fmt: skip
    return (
        postgresql.insert(_MACHINES)
        .from_select(names, rows)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(_MACHINES.c.id)
    )
