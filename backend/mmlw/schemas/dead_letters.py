"""What the API says about dead letters: rejected messages, replays and purges."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DeadLetterDetail", "DeadLetterItem", "DeadLetterSummary", "Purged", "ReplayAccepted"]


class DeadLetterSummary(BaseModel):
    """What every dead-letter view shows (read from a stored record's attributes)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    received_at: datetime
    source: str
    routing_key: str | None
    message_id: str | None
    reason: str
    replayed_at: datetime | None
    replay_count: int


class DeadLetterItem(DeadLetterSummary):
    """A dead letter in a list: its body's first bytes, size and digest, not the body."""

    body_preview: str = Field(description="the body's first 500 bytes (invalid UTF-8 replaced)")
    body_bytes: int = Field(description="size of the whole body as received")
    body_sha256: str = Field(description="SHA-256 of the whole body as received, hex")
    body_truncated: bool = Field(description="only the body's beginning was kept")


class DeadLetterDetail(DeadLetterSummary):
    """The whole record; ``body`` is what was kept of it (all of it unless
    ``body_truncated``), as text when it is UTF-8, else base64 (``body_encoding``)."""

    headers: dict[str, object]
    body: str
    body_encoding: Literal["utf-8", "base64"]
    body_bytes: int = Field(description="size of the whole body as received")
    body_kept_bytes: int = Field(description="bytes of it kept (MMLW_BROKER__DEAD_LETTER_BODY_KIB)")
    body_sha256: str = Field(description="SHA-256 of the whole body as received, hex")
    body_truncated: bool = Field(
        description="only the body's beginning was kept: replay needs a fixed body"
    )


class ReplayAccepted(BaseModel):
    id: int
    message_id: str
    machine_id: str
    readings: int
    replayed_at: datetime | None
    replay_count: int


class Purged(BaseModel):
    purged: int
