"""Where readings and Celery work travel: the broker section, ``MMLW_BROKER__*``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

__all__ = ["BROKER_SCHEMES", "INGEST_MAX_LENGTH", "SCORE_PARTITIONS", "BrokerSettings"]

# 100,000 messages: hours of backlog for a plant of machines (100 machines sending a batch
# every 10 s fill it in ~3 h), about 0.9 GB of broker disk at 50-reading batches (~9 KB of
# JSON each, 8 sensors), and a per-queue refusal long before the node-wide memory or disk
# alarm, at which RabbitMQ blocks every publisher on the node (Celery's too).
INGEST_MAX_LENGTH = 100_000

# Partitions of the scoring path: the most scorer processes that can share the work (one
# partition has one scorer at a time). 16 lets a fleet spread over up to 16 processes.
SCORE_PARTITIONS = 16

# RabbitMQ (kombu's and pika's spellings) and kombu's in-process transport (mmlw demo)
BROKER_SCHEMES = ("amqp", "amqps", "pyamqp", "memory")


class BrokerSettings(BaseModel):
    """Where readings and Celery work travel.

    ``memory://`` (the default) keeps everything inside one process: that is what
    ``mmlw demo`` uses. Point it at ``amqp://user:pass@host:5672//`` to run across
    processes and hosts.
    """

    url: str = "memory://"
    namespace: str = Field(
        default="mmlw",
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",
        description="prefix of every exchange and queue name (tests use a unique one)",
    )
    publish_confirm_timeout_s: float = 10.0
    max_batch_readings: int = Field(default=10_000, ge=1)
    max_message_bytes: int = Field(
        default=32 * 2**20,
        ge=1024,
        description="largest readings message body the ingest consumer parses; a longer one "
        "is dead-lettered unparsed (RabbitMQ itself refuses bodies over its max_message_size)",
    )
    predict_prefetch: int = Field(default=4, ge=1)
    ingest_batch_delay_ms: float = Field(
        default=50.0,
        ge=0,
        le=1000,
        description="longest an ingest consumer holds a message before writing its buffer "
        "(more messages per transaction and predict task, at most this much added latency)",
    )
    ingest_idle_ms: float = Field(
        default=15.0,
        ge=0,
        le=1000,
        description="an ingest consumer writes its buffer when no message came for this long",
    )
    ingest_batch_messages: int = Field(
        default=256,
        ge=1,
        le=4096,
        description="most messages an ingest consumer writes in one transaction (bounded "
        "by its prefetch too)",
    )
    predict_batches_per_task: int = Field(
        default=64,
        ge=1,
        le=256,
        description="stored batches one predict task scores together (one transaction, "
        "alert rules once per machine); ingest groups each written buffer into such tasks",
    )
    ingest_max_length: int | None = Field(
        default=INGEST_MAX_LENGTH,
        ge=1,
        description="messages <ns>.ingest holds before the broker refuses (nacks) publishes "
        "(x-max-length + x-overflow reject-publish); part of the queue's identity",
    )
    predict_backlog_limit: int | None = Field(
        default=10_000,
        ge=1,
        description="ingest consumers stop taking readings while the scoring queues "
        "(<ns>.score.<k>) hold more messages than this in all, and resume below half of it "
        "(none: never pause)",
    )
    score_partitions: int = Field(
        default=SCORE_PARTITIONS,
        ge=1,
        le=1024,
        description="partitions of the scoring path: machines are spread over this many "
        "queues, each streamed by one scorer at a time (change it only with the scoring "
        "queues empty: a machine may move to another partition)",
    )
    score_prefetch: int = Field(
        default=4,
        ge=1,
        le=256,
        description="scoring messages a scorer holds per partition it streams; one round "
        "streams all it holds, so when a backlog builds the per-machine costs of a round "
        "(checkpoint, drift state, alert rules) are paid for several batches at once",
    )
    score_rebalance_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="how often scorers report the partitions they streamed to each other, "
        "and one holding more busy partitions than its fair share (busy partitions / live "
        "scorers) hands the surplus on",
    )
    spool_path: Path | None = Field(
        default=None,
        description="mmlw simulate/publish keep batches the broker cannot take in this "
        "SQLite file and send them later (none: fail instead)",
    )
    spool_max_mb: float = Field(default=256, gt=0, description="size limit of the spool")
    dead_letter_body_kib: int = Field(
        default=64,
        ge=1,
        le=32 * 1024,
        description="KiB of a dead letter's body the store keeps, with the size and SHA-256 "
        "of the whole; a longer one keeps only its beginning and cannot be replayed as it was",
    )

    @property
    def dead_letter_body_limit(self) -> int:
        """Bytes of a dead letter's body the store keeps."""
        return self.dead_letter_body_kib * 1024

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme, sep, _ = value.partition("://")
        if not sep or scheme.lower() not in BROKER_SCHEMES:
            what = f"unknown scheme {scheme!r}" if sep else "no scheme"
            raise ValueError(
                f"MMLW_BROKER__URL has {what}; use amqp://user:password@host:5672// "
                f"(RabbitMQ) or memory:// (one process); schemes: {', '.join(BROKER_SCHEMES)}"
            )
        return value
