"""What the API says about dead letters: rejected messages, replays and purges."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

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
    body_preview: str
    body_bytes: int


class DeadLetterDetail(DeadLetterSummary):
    """The whole record; ``body`` is text when it is UTF-8, else base64 (``body_encoding``)."""

    headers: dict[str, object]
    body: str
    body_encoding: Literal["utf-8", "base64"]
    body_bytes: int


class ReplayAccepted(BaseModel):
    id: int
    message_id: str
    machine_id: str
    readings: int
    replayed_at: datetime | None
    replay_count: int


class Purged(BaseModel):
    purged: int
