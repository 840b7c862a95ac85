"""Silences: label matchers that mute notifications of matching alerts for a time range.

The store only keeps them; which alerts a silence mutes is decided by the alerting
services (:func:`mmlw.alerts.engine.labels_match`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mmlw.errors import InvalidInput, NotFound
from mmlw.schemas.alerts import SilenceIn
from mmlw.store.database import Database
from mmlw.store.tables import Silence

__all__ = ["SilenceRecord", "SilencesRepository", "active_silences"]


@dataclass(frozen=True)
class SilenceRecord:
    """One stored silence; ``active`` is whether it is in force at the time asked about."""

    id: int
    matchers: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str | None
    created_at: datetime
    active: bool


def _record(row: Silence, now: datetime) -> SilenceRecord:
    return SilenceRecord(
        id=row.id,
        matchers=dict(row.matchers),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        comment=row.comment,
        created_at=row.created_at,
        active=row.starts_at <= now < row.ends_at,
    )


def active_silences(session: Session, now: datetime) -> list[SilenceRecord]:
    """The silences in force at ``now``, read in the caller's transaction."""
    query = select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now)
    return [_record(row, now) for row in session.scalars(query)]


class SilencesRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def create(self, silence: SilenceIn, now: datetime) -> SilenceRecord:
        starts_at = silence.starts_at or now
        if silence.ends_at <= starts_at:
            raise InvalidInput("ends_at", "must be after starts_at (default: now)")
        row = Silence(
            matchers=dict(silence.matchers),
            starts_at=starts_at,
            ends_at=silence.ends_at,
            created_by=silence.created_by,
            comment=silence.comment,
            created_at=now,
        )
        with self._db.session() as session:
            session.add(row)
            session.flush()
            return _record(row, now)

    def active(self, now: datetime) -> list[SilenceRecord]:
        """The silences in force at ``now`` (in no particular order)."""
        with self._db.session() as session:
            return active_silences(session, now)

    def list(self, now: datetime, *, active_only: bool = False) -> list[SilenceRecord]:
        """Newest first."""
        query = select(Silence).order_by(Silence.id.desc())
        if active_only:
            query = query.where(Silence.starts_at <= now, Silence.ends_at > now)
        with self._db.session() as session:
            return [_record(r, now) for r in session.scalars(query)]

    def expire(self, silence_id: int, now: datetime) -> SilenceRecord:
        """End a silence now (a future one ends before it starts: never in force)."""
        with self._db.session() as session:
            row = session.get(Silence, silence_id)
            if row is None:
                raise NotFound(f"silence {silence_id} not found")
            if row.ends_at > now:
                row.ends_at = max(now, row.starts_at)
            return _record(row, now)
