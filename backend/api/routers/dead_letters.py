from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from backend.api.deps import StoreDep

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])


class DeadLetterItem(BaseModel):
    id: int
    received_at: datetime
    source: str
    routing_key: str | None
    message_id: str | None
    reason: str
    body_preview: str
    body_bytes: int


@router.get("")
def list_dead_letters(
    store: StoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[DeadLetterItem]:
    """Rejected messages, newest first, with the reason each was rejected."""
    return [
        DeadLetterItem(
            id=d.id,
            received_at=d.received_at,
            source=d.source,
            routing_key=d.routing_key,
            message_id=d.message_id,
            reason=d.reason,
            body_preview=d.body[:500].decode("utf-8", errors="replace"),
            body_bytes=len(d.body),
        )
        for d in store.dead_letters.list(limit)
    ]
