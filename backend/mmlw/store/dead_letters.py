"""Dead letters: every rejected message, with its reason and raw body, kept for replay.

A body is kept up to ``body_limit`` bytes (``MMLW_BROKER__DEAD_LETTER_BODY_KIB``), with the
size and SHA-256 of the whole: a message of any size costs at most that much to keep and
to show. A list with ``bodies=False`` (the API's) loads only a short preview of each.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import LargeBinary, Select, delete, func, select, update
from sqlalchemy.orm import Session

from mmlw.errors import NotFound
from mmlw.store.database import Database
from mmlw.store.tables import (
    DeadLetter,
    EventCount,
    Machine,
    ReadingBatch,
    ReadingBatchKey,
    ScoreBatch,
    StreamState,
    utcnow,
)

__all__ = [
    "DEAD_LETTERS_EVENT",
    "DEFAULT_BODY_LIMIT",
    "PREVIEW_BYTES",
    "SCHEMA_DEAD_LETTER_SOURCE",
    "DeadLetterOut",
    "DeadLettersRepository",
]

DEAD_LETTERS_EVENT = "dead_letters"
DEFAULT_BODY_LIMIT = 64 * 1024  # bytes of a body kept (MMLW_BROKER__DEAD_LETTER_BODY_KIB)
PREVIEW_BYTES = 500  # of a body, in lists
#: the source of a stored batch the champion refused (its input schema), replayable
SCHEMA_DEAD_LETTER_SOURCE = "predict"


@dataclass(frozen=True)
class DeadLetterOut:
    """A dead letter. ``body`` is what the store kept of the body (all of it unless
    ``truncated``); from :meth:`DeadLettersRepository.list` with ``bodies=False`` only its
    first :data:`PREVIEW_BYTES`.
    ``body_size`` and ``body_sha256`` describe the whole body as received, ``body_kept``
    how many bytes of it the store holds."""

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
    body_size: int = 0
    body_sha256: str = ""
    body_kept: int = 0

    @property
    def truncated(self) -> bool:
        """Whether only the first part of the body was kept (it cannot be replayed)."""
        return self.body_kept < self.body_size

    def decoded_body(self) -> tuple[str, Literal["utf-8", "base64"]]:
        """The body as text when it is UTF-8, else as base64, and which one it is (a body
        cut inside a character is still text, without that character's first bytes)."""
        try:
            return self.body.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
        if len(self.body) < self.body_size:
            try:
                text = codecs.getincrementaldecoder("utf-8")().decode(self.body, final=False)
                return text, "utf-8"
            except UnicodeDecodeError:
                pass
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
    body = bytes(row.body)
    return _described(
        row,
        body=body,
        body_size=len(body) if row.body_size is None else row.body_size,
        body_sha256=row.body_sha256 or hashlib.sha256(body).hexdigest(),
        body_kept=len(body),
    )


def _described(
    row: Any, *, body: bytes, body_size: int, body_sha256: str, body_kept: int
) -> DeadLetterOut:
    """A dead letter from a row (ORM or a selected row) and what is known of its body."""
    return DeadLetterOut(
        id=row.id,
        received_at=row.received_at,
        source=row.source,
        routing_key=row.routing_key,
        message_id=row.message_id,
        reason=row.reason,
        body=body,
        headers=dict(row.headers or {}),
        replayed_at=row.replayed_at,
        replay_count=row.replay_count or 0,
        body_size=body_size,
        body_sha256=body_sha256,
        body_kept=body_kept,
    )


# what a list without bodies loads of each dead letter: everything but the body, whose
# length and first PREVIEW_BYTES are computed by the database
_SUMMARY = (
    DeadLetter.id,
    DeadLetter.received_at,
    DeadLetter.source,
    DeadLetter.routing_key,
    DeadLetter.message_id,
    DeadLetter.reason,
    DeadLetter.headers,
    DeadLetter.replayed_at,
    DeadLetter.replay_count,
    DeadLetter.body_size,
    DeadLetter.body_sha256,
    func.length(DeadLetter.body).label("body_kept"),
    func.substr(DeadLetter.body, 1, PREVIEW_BYTES, type_=LargeBinary).label("preview"),
)


class DeadLettersRepository:
    """``body_limit``: bytes of a body kept (the first ones); the rest is dropped."""

    def __init__(self, database: Database, *, body_limit: int = DEFAULT_BODY_LIMIT) -> None:
        if body_limit < 1:
            raise ValueError("body_limit: must be at least 1 byte")
        self._db = database
        self._body_limit = body_limit

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
        """Record a dead letter: the first ``body_limit`` bytes of ``body``, and the size
        and SHA-256 of all of it. Returns its id."""
        row = DeadLetter(
            received_at=utcnow(),
            source=source,
            routing_key=routing_key,
            message_id=message_id,
            reason=reason,
            body=bytes(body[: self._body_limit]),
            body_size=len(body),
            body_sha256=hashlib.sha256(body).hexdigest(),
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

    def list(
        self, limit: int = 100, *, include_replayed: bool = True, bodies: bool = True
    ) -> list[DeadLetterOut]:
        """Newest first; replayed ones left out unless ``include_replayed``. With
        ``bodies=False`` bodies are not loaded: each ``body`` is then only the first
        :data:`PREVIEW_BYTES` of it."""

        def newest(query: Select[Any]) -> Select[Any]:
            if not include_replayed:
                query = query.where(DeadLetter.replayed_at.is_(None))
            return query.order_by(DeadLetter.id.desc()).limit(limit)

        with self._db.session() as session:
            if bodies:
                return [_out(row) for row in session.scalars(newest(select(DeadLetter)))]
            rows = session.execute(newest(select(*_SUMMARY))).all()
        return [
            _described(
                row,
                body=bytes(row.preview or b""),
                body_size=int(row.body_kept if row.body_size is None else row.body_size),
                body_sha256=row.body_sha256 or "",
                body_kept=int(row.body_kept or 0),
            )
            for row in rows
        ]

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
        return len(self.purge_returning(ids, older_than=older_than, everything=everything))

    def purge_returning(
        self,
        ids: Iterable[int] | None = None,
        *,
        older_than: datetime | None = None,
        everything: bool = False,
    ) -> Sequence[tuple[int, str | None]]:
        """:meth:`purge`, returning the (id, message_id) of each dead letter deleted (what
        the broker's copies are matched against)."""
        query = select(DeadLetter.id, DeadLetter.message_id)
        if not everything:
            id_list = None if ids is None else [int(i) for i in ids]
            if id_list is None and older_than is None:
                return []
            if id_list is not None:
                if not id_list:
                    return []
                query = query.where(DeadLetter.id.in_(id_list))
            if older_than is not None:
                if older_than.tzinfo is None:
                    raise ValueError("older_than: a timezone-aware datetime is required")
                query = query.where(DeadLetter.received_at < older_than)
        with self._db.session() as session:
            rows = [(int(i), m) for i, m in session.execute(query.with_for_update()).all()]
            for chunk in range(0, len(rows), 1000):
                batch = [i for i, _ in rows[chunk : chunk + 1000]]
                session.execute(delete(DeadLetter).where(DeadLetter.id.in_(batch)))
            return rows

    def stored_ids(self, ids: Collection[int]) -> set[int]:
        """Which of ``ids`` name dead letters the store holds now."""
        if not ids:
            return set()
        query = select(DeadLetter.id).where(DeadLetter.id.in_([int(i) for i in ids]))
        with self._db.session() as session:
            return {int(i) for i in session.scalars(query)}

    def retire_batch(self, batch_id: int, message_id: str) -> int:
        """Delete the stored batch a scoring dead letter names, now that a fixed replay
        replaces it: else its readings would be stored twice, once never scored. Only a
        batch ``batch_id`` holding ``message_id`` and scored by no model goes (with its
        idempotency key, and its readings from its machine's count). Returns how many
        readings went (0: nothing to retire)."""
        wanted = (ReadingBatch.id == batch_id) & (ReadingBatch.message_id == message_id)
        with self._db.session() as session:
            row = session.execute(select(ReadingBatch.machine_id, ReadingBatch.n).where(wanted))
            found = row.first()
            scored = select(ScoreBatch.id).where(ScoreBatch.batch_id == batch_id).limit(1)
            if found is None or session.scalar(scored) is not None:
                return 0
            session.execute(delete(ReadingBatch).where(wanted))
            session.execute(delete(ReadingBatchKey).where(ReadingBatchKey.message_id == message_id))
            session.execute(
                update(Machine)
                .where(Machine.id == found.machine_id)
                .values(n_readings=Machine.n_readings - found.n)
            )
            # a stream whose last batch this was steps back before it: SQLite gives its
            # id to the next batch stored, which must not be taken as streamed already
            session.execute(
                update(StreamState)
                .where(
                    StreamState.machine_id == found.machine_id,
                    StreamState.cursor_batch_id == batch_id,
                )
                .values(cursor_batch_id=batch_id - 1, revision=StreamState.revision + 1)
            )
            return int(found.n)
