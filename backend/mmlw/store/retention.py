"""Deleting what is older than a horizon: readings and scores batches, resolved alerts.

A batch is older than a horizon when its last reading is (``t_end < horizon``): nothing
newer than the horizon is ever removed. A readings batch that a stream checkpoint has not
streamed yet (``id > cursor_batch_id`` of its machine's checkpoint of any role: see
:mod:`mmlw.services.streaming`) is kept whatever its age; checkpoints themselves are
never removed. A batch the rollups do not hold yet (``rolled_up`` false: see
:mod:`mmlw.store.rollups`) is kept too, and so is a readings batch one of whose score
batches is not rolled up (adding scores to the rollups needs their readings' times):
long ranges are read from the rollups once raw data is gone, so nothing is dropped
before it is in them.

On PostgreSQL, where the batch tables are partitioned by day (:mod:`mmlw.store.partitions`),
a day partition wholly before the horizon is dropped as one (with the message ids of its
batches); one still holding a batch that ends after the horizon, or one a checkpoint
needs, is kept until a later run. The default partition, and SQLite's tables, are pruned
by DELETEs of at most ``batch_size`` rows per transaction, so no run holds long locks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import BigInteger, Boolean, String, Table, delete, exists, select
from sqlalchemy.engine import Connection

from mmlw.store.database import Database
from mmlw.store.partitions import (
    DayPartition,
    day_partitions,
    default_partition,
    is_partitioned,
)
from mmlw.store.tables import (
    Alert,
    Delivery,
    DeliveryAttempt,
    ReadingBatchKey,
    ScoreBatch,
    StreamState,
    UtcDateTime,
)

__all__ = ["DEFAULT_BATCH_SIZE", "Pruned", "prune_alerts", "prune_readings", "prune_scores"]

DEFAULT_BATCH_SIZE = 1000

_STATES = cast(Table, StreamState.__table__)
_SCORES = cast(Table, ScoreBatch.__table__)
_KEYS = cast(Table, ReadingBatchKey.__table__)
_ALERTS = cast(Table, Alert.__table__)
_DELIVERIES = cast(Table, Delivery.__table__)
_ATTEMPTS = cast(Table, DeliveryAttempt.__table__)

log = logging.getLogger(__name__)


@dataclass
class Pruned:
    """What pruning one table did: rows deleted one by one, day partitions dropped, and
    day partitions before the horizon kept (they still hold newer or needed batches)."""

    table: str
    horizon: datetime
    rows_deleted: int = 0
    partitions_dropped: list[str] = field(default_factory=list)
    partitions_kept: list[str] = field(default_factory=list)


def _batches(name: str) -> sa.TableClause:
    """The columns pruning reads of a batch table or of one of its partitions."""
    return sa.table(
        name,
        sa.column("id", BigInteger()),
        sa.column("machine_id", String()),
        sa.column("message_id", String()),
        sa.column("t_start", UtcDateTime()),
        sa.column("t_end", UtcDateTime()),
        sa.column("rolled_up", Boolean()),
    )


def _needed(batches: sa.TableClause) -> sa.ColumnElement[bool]:
    """Whether a readings batch must stay: a checkpoint of its machine has yet to stream
    it, or it or one of its score batches is not rolled up yet."""
    return sa.or_(
        ~batches.c.rolled_up,
        exists().where(
            _STATES.c.machine_id == batches.c.machine_id,
            batches.c.id > _STATES.c.cursor_batch_id,
        ),
        exists().where(_SCORES.c.batch_id == batches.c.id, ~_SCORES.c.rolled_up),
    )


def prune_readings(
    database: Database, horizon: datetime, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> Pruned:
    """Delete the readings batches (and their message ids) older than ``horizon`` that
    no checkpoint needs and the rollups hold (with their scores)."""
    return _prune(database, "reading_batches", horizon, batch_size, readings=True)


def prune_scores(
    database: Database, horizon: datetime, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> Pruned:
    """Delete the score batches older than ``horizon`` that are rolled up."""
    return _prune(database, "score_batches", horizon, batch_size, readings=False)


def _prune(
    database: Database, table: str, horizon: datetime, batch_size: int, *, readings: bool
) -> Pruned:
    pruned = Pruned(table, horizon)
    with database.engine.connect() as connection:
        partitioned = is_partitioned(connection, table)
        parts = day_partitions(connection, table) if partitioned else []
    for part in parts:
        if part.upper > horizon:
            break
        with database.engine.begin() as connection:
            if _drop_partition(connection, table, part, horizon, readings=readings):
                pruned.partitions_dropped.append(part.name)
            else:
                pruned.partitions_kept.append(part.name)
    rows = _batches(default_partition(table) if partitioned else table)
    while True:
        with database.engine.begin() as connection:
            deleted = _delete_some(connection, rows, horizon, batch_size, readings=readings)
        pruned.rows_deleted += deleted
        if deleted < batch_size:
            break
    if pruned.partitions_kept:
        log.info("%s: partitions kept past the horizon: %s", table, pruned.partitions_kept)
    return pruned


def _drop_partition(
    connection: Connection, table: str, part: DayPartition, horizon: datetime, *, readings: bool
) -> bool:
    """Drop ``part`` (and the message ids of its batches) unless it holds a batch that
    ends at or after ``horizon``, that a checkpoint needs or that is not rolled up;
    whether it was dropped."""
    rows = _batches(part.name)
    keep = sa.or_(rows.c.t_end >= horizon, _needed(rows) if readings else ~rows.c.rolled_up)
    if connection.scalar(select(exists().where(keep))):
        return False
    if readings:  # a key's t_start is its batch's: the partition's range covers them
        connection.execute(
            delete(_KEYS).where(_KEYS.c.t_start >= part.lower, _KEYS.c.t_start < part.upper)
        )
    connection.execute(sa.text(f"DROP TABLE {part.name}"))
    log.info("%s: dropped partition %s", table, part.name)
    return True


def _delete_some(
    connection: Connection,
    rows: sa.TableClause,
    horizon: datetime,
    batch_size: int,
    *,
    readings: bool,
) -> int:
    """Delete at most ``batch_size`` rolled-up batches of ``rows`` older than
    ``horizon`` (for readings: not needed by a checkpoint, with their scores rolled up,
    and with their message ids); how many."""
    old: list[Any] = [rows.c.t_end < horizon, ~_needed(rows) if readings else rows.c.rolled_up]
    columns = [rows.c.id, rows.c.message_id] if readings else [rows.c.id]
    found = connection.execute(
        select(*columns).where(*old).order_by(rows.c.id).limit(batch_size)
    ).all()
    if not found:
        return 0
    if readings:
        connection.execute(delete(_KEYS).where(_KEYS.c.message_id.in_([r[1] for r in found])))
    connection.execute(delete(rows).where(rows.c.id.in_([r[0] for r in found])))
    return len(found)


def prune_alerts(
    database: Database, horizon: datetime, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> Pruned:
    """Delete the alerts resolved before ``horizon``, with their deliveries and delivery
    attempts; open alerts are kept whatever their age."""
    pruned = Pruned("alerts", horizon)
    while True:
        with database.engine.begin() as connection:
            ids = list(
                connection.scalars(
                    select(_ALERTS.c.id)
                    .where(
                        _ALERTS.c.open_key.is_(None),
                        _ALERTS.c.resolved_at.is_not(None),
                        _ALERTS.c.resolved_at < horizon,
                    )
                    .order_by(_ALERTS.c.id)
                    .limit(batch_size)
                )
            )
            if ids:
                deliveries = select(_DELIVERIES.c.id).where(_DELIVERIES.c.alert_id.in_(ids))
                connection.execute(delete(_ATTEMPTS).where(_ATTEMPTS.c.delivery_id.in_(deliveries)))
                connection.execute(delete(_DELIVERIES).where(_DELIVERIES.c.alert_id.in_(ids)))
                connection.execute(delete(_ALERTS).where(_ALERTS.c.id.in_(ids)))
        pruned.rows_deleted += len(ids)
        if len(ids) < batch_size:
            return pruned
