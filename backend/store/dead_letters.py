"""Dead letters: every rejected message, with its reason and raw body, kept for replay."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from backend.errors import NotFound
from backend.store.database import Database
from backend.store.tables import DeadLetter, EventCount, utcnow

__all__ = ["DEAD_LETTERS_EVENT", "DeadLetterOut", "DeadLettersRepository"]

DEAD_LETTERS_EVENT = "dead_letters"


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
    replayed_at: datetime | None = None
    replay_count: int = 0

    def decoded_body(self) -> tuple[str, Literal["utf-8", "base64"]]:
        """The body as text when it is UTF-8, else as base64, and which one it is."""
        try:
            return self.body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(self.body).decode("ascii"), "base64"


def _count_one(session: Session) -> None:
    """Add one to the dead letters ever recorded (in the caller's transaction)."""
    counted = session.execute(
        update(EventCount)
        .where(EventCount.name == DEAD_LETTERS_EVENT)
        .values(count=EventCount.count + 1)
    )
    if not counted.rowcount:  # type: ignore[attr-defined]
        session.add(EventCount(name=DEAD_LETTERS_EVENT, count=1))


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
        replayed_at=row.replayed_at,
        replay_count=row.replay_count or 0,
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
            replay_count=0,
        )
        with self._db.session() as session:
            session.add(row)
            _count_one(session)
            session.flush()
            return row.id

    def exists(self, *, source: str, message_id: str, reason: str) -> bool:
        """Whether this message was already dead-lettered from ``source`` for ``reason``."""
        query = select(DeadLetter.id).where(
            DeadLetter.source == source,
            DeadLetter.message_id == message_id,
            DeadLetter.reason == reason,
        )
        with self._db.session() as session:
            return session.scalar(query.limit(1)) is not None

    def get(self, dead_letter_id: int) -> DeadLetterOut:
        """The dead letter, or :class:`NotFound`."""
        with self._db.session() as session:
            row = session.get(DeadLetter, dead_letter_id)
            if row is None:
                raise NotFound(f"dead letter {dead_letter_id} not found")
            return _out(row)

    def list(self, limit: int = 100, *, include_replayed: bool = True) -> list[DeadLetterOut]:
        """Newest first; replayed ones left out unless ``include_replayed``."""
        query = select(DeadLetter)
        if not include_replayed:
            query = query.where(DeadLetter.replayed_at.is_(None))
        query = query.order_by(DeadLetter.id.desc()).limit(limit)
        with self._db.session() as session:
            return [_out(row) for row in session.scalars(query)]

    def count(self) -> int:
        """Dead letters stored now (a purge lowers it)."""
        with self._db.session() as session:
            return int(session.scalar(select(func.count(DeadLetter.id))) or 0)

    def ever_recorded(self) -> int:
        """Dead letters ever recorded, purged ones included: it never decreases."""
        query = select(EventCount.count).where(EventCount.name == DEAD_LETTERS_EVENT)
        with self._db.session() as session:
            return int(session.scalar(query) or 0)

    def mark_replayed(self, dead_letter_id: int) -> DeadLetterOut:
        """Set ``replayed_at`` to now and add one to ``replay_count``; :class:`NotFound` if
        there is no such dead letter."""
        with self._db.session() as session:
            row = session.get(DeadLetter, dead_letter_id, with_for_update=True)
            if row is None:
                raise NotFound(f"dead letter {dead_letter_id} not found")
            row.replayed_at = utcnow()
            row.replay_count = (row.replay_count or 0) + 1
            session.flush()
            return _out(row)

    def purge(
        self,
        ids: Iterable[int] | None = None,
        *,
        older_than: datetime | None = None,
        everything: bool = False,
    ) -> int:
        """Delete dead letters and return how many went (:meth:`ever_recorded` keeps
        counting them).

        With ``everything=True`` every one goes; otherwise only those matching every criterion
        given (``ids``, received before ``older_than``). No criterion deletes nothing.
        """
        statement = delete(DeadLetter)
        if not everything:
            id_list = None if ids is None else [int(i) for i in ids]
            if id_list is None and older_than is None:
                return 0
            if id_list is not None:
                if not id_list:
                    return 0
                statement = statement.where(DeadLetter.id.in_(id_list))
            if older_than is not None:
                if older_than.tzinfo is None:
                    raise ValueError("older_than: a timezone-aware datetime is required")
                statement = statement.where(DeadLetter.received_at < older_than)
        with self._db.session() as session:
            result = session.execute(statement)
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
