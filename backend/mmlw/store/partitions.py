"""Daily time partitions of the per-batch tables on PostgreSQL (SQLite is not partitioned).

``reading_batches`` and ``score_batches`` are range-partitioned by ``t_start`` (a batch's
first reading) into one partition per UTC day, named ``<table>_pYYYYMMDD``, plus a
default partition ``<table>_default`` for batches no day partition covers (older than
the partitions made when the table was partitioned, or dated beyond those made ahead).

Why daily: retention drops whole partitions, so a partition's span is how much data is
kept past the horizon at most; at the rates the store is sized for (terabytes a day) a
month-long partition would keep weeks of raw data too long. Thirty to a few hundred
partitions stay well within what the planner handles; lookups by ``id`` or
``message_id`` (no partition key) probe each partition's index once.

Partitions are made ahead of time (:func:`ensure_partitions`: by ``mmlw db upgrade`` and
the daily retention task), so rows land in a day partition, not the default one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

__all__ = [
    "AHEAD_DAYS",
    "BYTEA_COLUMNS",
    "PARTITIONED",
    "DayPartition",
    "create_day_partition",
    "day_partitions",
    "default_partition",
    "ensure_partitions",
    "is_partitioned",
    "partition_name",
]

PARTITIONED = ("reading_batches", "score_batches")
AHEAD_DAYS = 3  # day partitions made ahead of today, so a missed run changes nothing

# packed arrays are stored uncompressed (migration 0007); a partition gets it explicitly
BYTEA_COLUMNS = {
    "reading_batches": ("timestamps_us", "values", "labels"),
    "score_batches": ("scores", "contributions"),
}

_NAME = re.compile(r"^(?P<table>[a-z_]+)_p(?P<day>\d{8})$")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DayPartition:
    """One day partition: its name and the ``t_start`` range ``[lower, upper)`` it holds."""

    name: str
    day: date

    @property
    def lower(self) -> datetime:
        return datetime.combine(self.day, time(), tzinfo=UTC)

    @property
    def upper(self) -> datetime:
        return self.lower + timedelta(days=1)


def partition_name(table: str, day: date) -> str:
    """The name of ``table``'s partition of ``day``.

    >>> partition_name("reading_batches", date(2026, 12, 5))
    'reading_batches_p20261205'
    """
    return f"{table}_p{day:%Y%m%d}"


def default_partition(table: str) -> str:
    return f"{table}_default"


def is_partitioned(connection: Connection, table: str) -> bool:
    """Whether ``table`` (in the current schema) is a partitioned table; False on SQLite."""
    if connection.dialect.name != "postgresql":
        return False
    found = connection.scalar(
        text(
            "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relname = :table AND c.relnamespace = current_schema()::regnamespace"
        ),
        {"table": table},
    )
    return found is not None


def day_partitions(connection: Connection, table: str) -> list[DayPartition]:
    """The day partitions of ``table``, oldest first (the default partition is not one)."""
    names = connection.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :table "
            "AND p.relnamespace = current_schema()::regnamespace"
        ),
        {"table": table},
    )
    out = []
    for name in names:
        match = _NAME.match(name)
        if match and match["table"] == table:
            out.append(DayPartition(name, datetime.strptime(match["day"], "%Y%m%d").date()))
    return sorted(out, key=lambda p: p.day)


def create_day_partition(connection: Connection, table: str, day: date) -> bool:
    """Create ``table``'s partition of ``day`` if missing; True if created now. False too
    when the default partition holds rows of that day (PostgreSQL refuses the partition
    then; those rows stay in the default partition, which retention prunes row by row)."""
    part = DayPartition(partition_name(table, day), day)
    exists = connection.scalar(text("SELECT to_regclass(:name)"), {"name": part.name})
    if exists is not None:
        return False
    try:
        with connection.begin_nested():
            connection.execute(
                text(
                    f"CREATE TABLE {part.name} PARTITION OF {table} "
                    f"FOR VALUES FROM ('{part.lower.isoformat()}') TO ('{part.upper.isoformat()}')"
                )
            )
            for column in BYTEA_COLUMNS.get(table, ()):
                connection.execute(
                    text(f'ALTER TABLE {part.name} ALTER COLUMN "{column}" SET STORAGE EXTERNAL')
                )
    except DBAPIError as error:
        log.warning("partition %s not created: %s", part.name, str(error.orig).strip())
        return False
    return True


def ensure_partitions(
    engine: Engine | Connection,
    *,
    now: datetime | None = None,
    ahead_days: int = AHEAD_DAYS,
    tables: Iterable[str] = PARTITIONED,
) -> list[str]:
    """Create the day partitions of today (UTC, of ``now``) and ``ahead_days`` after it,
    for each partitioned table; the names created now. Nothing on SQLite or for a table
    that is not partitioned. Idempotent."""
    if isinstance(engine, Connection):
        return _ensure(engine, now, ahead_days, tables)
    if engine.dialect.name != "postgresql":
        return []
    with engine.begin() as connection:
        return _ensure(connection, now, ahead_days, tables)


def _ensure(
    connection: Connection, now: datetime | None, ahead_days: int, tables: Iterable[str]
) -> list[str]:
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    created = []
    for table in tables:
        if not is_partitioned(connection, table):
            continue
        for offset in range(ahead_days + 1):
            day = today + timedelta(days=offset)
            if create_day_partition(connection, table, day):
                created.append(partition_name(table, day))
    return created
