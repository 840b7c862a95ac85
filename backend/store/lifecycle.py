"""Model lifecycle records: the history of every alias move, and per-machine drift state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from backend.schemas.lifecycle import AliasEventOut
from backend.store.database import Database
from backend.store.tables import AliasEvent, DriftState

__all__ = ["AliasEventOut", "AliasHistoryRepository", "DriftRecord", "DriftStatesRepository"]


class AliasHistoryRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def record(
        self,
        machine_id: str,
        alias: str,
        from_version: int | None,
        to_version: int | None,
        *,
        at: datetime,
        actor: str,
        reason: str,
        details: dict[str, Any] | None = None,
    ) -> AliasEventOut:
        row = AliasEvent(
            machine_id=machine_id,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            at=at,
            actor=actor,
            reason=reason,
            details=details or {},
        )
        with self._db.session() as session:
            session.add(row)
            session.flush()
            return _out(row)

    def list(self, machine_id: str, alias: str | None = None) -> list[AliasEventOut]:
        """Oldest first."""
        query = select(AliasEvent).where(AliasEvent.machine_id == machine_id)
        if alias is not None:
            query = query.where(AliasEvent.alias == alias)
        with self._db.session() as session:
            return [_out(r) for r in session.scalars(query.order_by(AliasEvent.id))]

    def version_at(self, machine_id: str, alias: str, at: datetime) -> int | None:
        """Which version held ``alias`` at time ``at`` (None: no version did)."""
        query = (
            select(AliasEvent.to_version)
            .where(AliasEvent.machine_id == machine_id, AliasEvent.alias == alias)
            .where(AliasEvent.at <= at)
            .order_by(AliasEvent.at.desc(), AliasEvent.id.desc())
            .limit(1)
        )
        with self._db.session() as session:
            return session.scalar(query)


def _out(row: AliasEvent) -> AliasEventOut:
    return AliasEventOut(
        id=row.id,
        machine_id=row.machine_id,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        at=row.at,
        actor=row.actor,
        reason=row.reason,
        details=dict(row.details or {}),
    )


@dataclass(frozen=True)
class DriftRecord:
    machine_id: str
    champion_version: int
    detector: dict[str, Any]
    status: str
    change_at: datetime | None
    job_id: str | None
    updated_at: datetime


class DriftStatesRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def get(self, machine_id: str) -> DriftRecord | None:
        with self._db.session() as session:
            row = session.get(DriftState, machine_id)
            return None if row is None else _drift(row)

    def save(self, record: DriftRecord, expected: DriftRecord | None) -> bool:
        """Write ``record`` if the stored state is still ``expected`` (None: absent);
        False when another process changed it first (the caller re-reads)."""
        from sqlalchemy.exc import IntegrityError
        from sqlalchemy.orm.exc import StaleDataError

        try:
            with self._db.session() as session:
                row = session.get(DriftState, record.machine_id)
                if (row is None) != (expected is None):
                    return False
                if row is not None and expected is not None and _drift(row) != expected:
                    return False
                if row is None:
                    row = DriftState(machine_id=record.machine_id)
                    session.add(row)
                row.champion_version = record.champion_version
                row.detector = record.detector
                row.status = record.status
                row.change_at = record.change_at
                row.job_id = record.job_id
                row.updated_at = record.updated_at
        except (StaleDataError, IntegrityError):
            return False
        return True


def _drift(row: DriftState) -> DriftRecord:
    return DriftRecord(
        machine_id=row.machine_id,
        champion_version=row.champion_version,
        detector=dict(row.detector),
        status=row.status,
        change_at=row.change_at,
        job_id=row.job_id,
        updated_at=row.updated_at,
    )
