"""Dead letters: every rejected message, with its reason and raw body, kept for replay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from backend.store.database import Database
from backend.store.tables import DeadLetter, utcnow

__all__ = ["DeadLetterOut", "DeadLettersRepository"]


@dataclass(frozen=True)
class DeadLetterOut:
    id: int
    received_at: datetime
    source: str
    routing_key: str | None
    message_id: str | None
    reason: str
    body: bytes
    headers: dict[str, Any]


def _out(row: DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(
        id=row.id,
        received_at=row.received_at,
        source=row.source,
        routing_key=row.routing_key,
        message_id=row.message_id,
        reason=row.reason,
        body=row.body,
        headers=dict(row.headers or {}),
    )


class DeadLettersRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def add(
        self,
        *,
        source: str,
        reason: str,
        body: bytes,
        routing_key: str | None = None,
        message_id: str | None = None,
        headers: dict[str, Any] | None = None,
    ) -> int:
        row = DeadLetter(
            received_at=utcnow(),
            source=source,
            routing_key=routing_key,
            message_id=message_id,
            reason=reason,
            body=body,
            headers=headers or {},
        )
        with self._db.session() as session:
            session.add(row)
            session.flush()
            return row.id

    def list(self, limit: int = 100) -> list[DeadLetterOut]:
        query = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
        with self._db.session() as session:
            return [_out(row) for row in session.scalars(query)]

    def count(self) -> int:
        with self._db.session() as session:
            return int(session.scalar(select(func.count(DeadLetter.id))) or 0)
