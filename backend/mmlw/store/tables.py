"""The relational schema (SQLAlchemy 2 declarative). Change it only with a migration.

Readings and scores are stored per *batch* (one row per broker message), their arrays
packed column-wise as little-endian binary: one insert per batch instead of one per
reading keeps ingest fast, and a batch is the unit of idempotency (``message_id``, held
unique by :class:`ReadingBatchKey`).

On PostgreSQL ``reading_batches`` and ``score_batches`` are partitioned by day of
``t_start`` (:mod:`mmlw.store.partitions`, migration 0012): their primary keys there are
``(id, t_start)`` and ``score_batches.batch_id`` references no key (a partitioned table
has no unique key on ``id`` alone, and scores may outlive the readings they scored).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Alert",
    "AliasEvent",
    "Base",
    "DeadLetter",
    "Delivery",
    "DeliveryAttempt",
    "Deployment",
    "DriftState",
    "EventCount",
    "Job",
    "Machine",
    "ReadingBatch",
    "ReadingBatchKey",
    "ScoreBatch",
    "Silence",
    "StreamState",
    "UtcDateTime",
    "readings_of",
]


# partial indexes over the batches the rollups do not hold yet (migration 0013)
_UNROLLED: dict[str, Any] = {
    "postgresql_where": text("NOT rolled_up"),
    "sqlite_where": text("NOT rolled_up"),
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, datetime: UtcDateTime}


class Machine(Base):
    __tablename__ = "machines"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    columns: Mapped[list[str]] = mapped_column(JSON)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    last_reading_at: Mapped[datetime | None]
    n_readings: Mapped[int] = mapped_column(BigInteger, default=0)
    n_scored: Mapped[int] = mapped_column(BigInteger, default=0)


class ReadingBatch(Base):
    __tablename__ = "reading_batches"
    __table_args__ = (
        Index("ix_reading_batches_machine_t", "machine_id", "t_start", "t_end"),
        Index("ix_reading_batches_machine_id", "machine_id", "id"),  # streams (0015)
        Index("ix_reading_batches_unrolled_id", "id", **_UNROLLED),
        Index("ix_reading_batches_unrolled_machine_t", "machine_id", "t_start", **_UNROLLED),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id"))
    message_id: Mapped[str] = mapped_column(String(36), index=True)  # unique: ReadingBatchKey
    received_at: Mapped[datetime]
    t_start: Mapped[datetime]
    t_end: Mapped[datetime]
    n: Mapped[int]
    columns: Mapped[list[str]] = mapped_column(JSON)
    timestamps_us: Mapped[bytes] = mapped_column(LargeBinary)
    values: Mapped[bytes] = mapped_column(LargeBinary)
    labels: Mapped[bytes | None] = mapped_column(LargeBinary)
    rolled_up: Mapped[bool] = mapped_column(default=False, server_default=false())  # 0013


class ReadingBatchKey(Base):
    """The idempotency key of stored readings batches: one row per stored ``message_id``,
    written in the transaction that stores the batch and deleted with it. A unique key
    of its own because a partitioned ``reading_batches`` can only hold keys that include
    its partition key (``t_start``), and a reused message id may come with another one."""

    __tablename__ = "reading_batch_keys"
    __table_args__ = (Index("ix_reading_batch_keys_t_start", "t_start"),)

    message_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    t_start: Mapped[datetime]


class ScoreBatch(Base):
    __tablename__ = "score_batches"
    __table_args__ = (
        UniqueConstraint(
            "batch_id", "model_name", "model_version", "role", name="uq_score_batch_model_role"
        ),
        Index("ix_score_batches_machine_t", "machine_id", "t_start"),
        Index("ix_score_batches_machine_role_end", "machine_id", "role", "t_end", "id"),
        Index("ix_score_batches_unrolled_id", "id", **_UNROLLED),
        Index("ix_score_batches_unrolled_batch", "batch_id", **_UNROLLED),
        Index("ix_score_batches_unrolled_machine_t", "machine_id", "role", "t_start", **_UNROLLED),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    batch_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id"))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[int]
    role: Mapped[str] = mapped_column(String(16), default="champion")
    threshold: Mapped[float] = mapped_column(Float)
    scored_at: Mapped[datetime]
    t_start: Mapped[datetime]
    t_end: Mapped[datetime]
    n: Mapped[int]
    n_flagged: Mapped[int]
    columns: Mapped[list[str]] = mapped_column(JSON)
    scores: Mapped[bytes] = mapped_column(LargeBinary)
    contributions: Mapped[bytes] = mapped_column(LargeBinary)
    contribution_rows: Mapped[bytes | None] = mapped_column(LargeBinary)  # 0014; NULL: all
    rolled_up: Mapped[bool] = mapped_column(default=False, server_default=false())  # 0013


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_machine_created", "machine_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    machine_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)


class DeadLetter(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    received_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(16))
    routing_key: Mapped[str | None] = mapped_column(String(255))
    message_id: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)  # its first body_limit bytes (0010)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    replayed_at: Mapped[datetime | None]
    replay_count: Mapped[int] = mapped_column(default=0, server_default="0")
    body_size: Mapped[int | None] = mapped_column(BigInteger)  # of the whole body received
    body_sha256: Mapped[str | None] = mapped_column(String(64))  # of the whole body, hex


class EventCount(Base):
    """How many times an event ever happened (``dead_letters``: messages dead-lettered).
    Only ever incremented, so deleting the rows an event left (a purge) keeps the count:
    Prometheus counters are read from here."""

    __tablename__ = "event_counts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Alert(Base):
    """One alert instance; ``open_key`` is "rule/machine" while open and NULL once
    resolved, so a unique index allows one open instance per group. ``revision`` makes
    concurrent evaluations of one group optimistic: the loser retries."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_machine_started", "machine_id", "started_at"),
        Index("ix_alerts_state", "state"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64))
    machine_id: Mapped[str] = mapped_column(String(64))
    open_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime]
    last_active_at: Mapped[datetime]
    last_evaluated_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    last_notified_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    ack_comment: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[int | None]
    top_sensors: Mapped[list[Any]] = mapped_column(JSON, default=list)
    revision: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": revision}


class Silence(Base):
    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    matchers: Mapped[dict[str, Any]] = mapped_column(JSON)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class Delivery(Base):
    """A notification to send (the outbox: written with the alert change it reports)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_alert", "alert_id"),
        Index("ix_deliveries_status", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    notifier: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    dispatched_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_delivery", "delivery_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    attempt: Mapped[int]
    at: Mapped[datetime]
    ok: Mapped[bool]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)


class AliasEvent(Base):
    """Every move of a model alias: who, when, why, from which version to which."""

    __tablename__ = "alias_events"
    __table_args__ = (Index("ix_alias_events_machine_at", "machine_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    machine_id: Mapped[str] = mapped_column(String(64))
    alias: Mapped[str] = mapped_column(String(32))
    from_version: Mapped[int | None]
    to_version: Mapped[int | None]
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DriftState(Base):
    """The drift detector of one machine's champion scores, and what it triggered."""

    __tablename__ = "drift_states"

    machine_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    champion_version: Mapped[int]
    detector: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    change_at: Mapped[datetime | None]
    job_id: Mapped[str | None] = mapped_column(String(36))
    updated_at: Mapped[datetime]
    revision: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": revision}


class StreamState(Base):
    """Where one machine's stream stands for one role (champion or challenger): which
    model version's carry it holds, the last readings batch streamed into it (batches are
    streamed in id order, i.e. the order they were ingested), and the carry itself
    (named arrays, ``numpy.savez``; never pickled). Written in the transaction that stores
    the scores it produced, under ``revision`` (compare-and-set)."""

    __tablename__ = "stream_states"

    machine_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    model_version: Mapped[int]
    cursor_batch_id: Mapped[int] = mapped_column(BigInteger)
    n_rows: Mapped[int] = mapped_column(BigInteger)
    carry: Mapped[bytes] = mapped_column(LargeBinary)
    revision: Mapped[int]
    updated_at: Mapped[datetime]


class ApiKey(Base):
    """An API key: only its SHA-256 digest is stored; ``prefix`` helps people tell keys
    apart without revealing them."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Deployment(Base):
    """This database's deployment: one row, written by migration 0011 and never changed.
    ``id`` tags the MLflow experiment the deployment claims, so that two deployments
    never score with each other's models. ``had_models``: the database already recorded
    alias moves when it got its id (an upgrade), so untagged models under its prefix are
    taken to be its own."""

    __tablename__ = "deployment"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime]
    had_models: Mapped[bool]


def utcnow() -> datetime:
    return datetime.now(UTC)


def readings_of(scores: Any, readings: Any) -> ColumnElement[bool]:
    """Join condition of score batches and the readings batches they scored, given the
    columns of each (``Table.c``, a mapped class or an alias): by id *and* by ``t_start``
    (equal: a batch's first reading), the partition key. By id alone PostgreSQL cannot
    tell which day partition holds a batch: it estimated ~90 rows per id of a partition
    not analysed yet and, on a machine with ~6,000 batches, chose to sort whole
    partitions to deliver a page of recent scores in order (100-400 ms per read instead
    of 1; bench/RESULTS.md, "a scorer stalled by a plan")."""
    return and_(readings.id == scores.batch_id, readings.t_start == scores.t_start)
