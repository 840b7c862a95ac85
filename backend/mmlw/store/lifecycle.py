"""Model lifecycle records: the history of every alias move, and per-machine drift state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, func, insert, select
from sqlalchemy.exc import IntegrityError

from mmlw.schemas.lifecycle import AliasEventOut
from mmlw.store.database import Database
from mmlw.store.revisions import update_if_unchanged
from mmlw.store.tables import AliasEvent, DriftState

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

    def newest_id(self) -> int:
        """The id of the newest alias move recorded (0: none): it changes whenever MMLW
        moves an alias (one index read)."""
        with self._db.engine.connect() as connection:
            return int(connection.scalar(select(func.max(AliasEvent.id))) or 0)

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
    revision: int = 0  # the stored state's, as read or written (0: never stored)


class DriftStatesRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def get(self, machine_id: str) -> DriftRecord | None:
        table = cast(Table, DriftState.__table__)  # Core: read for every scored machine
        with self._db.engine.connect() as connection:
            row = connection.execute(select(table).where(table.c.machine_id == machine_id)).first()
        return None if row is None else _drift(row)

    def get_many(self, machine_ids: Sequence[str]) -> dict[str, DriftRecord]:
        """:meth:`get` of many machines in one query (absent ones are left out)."""
        table = cast(Table, DriftState.__table__)
        if not machine_ids:
            return {}
        with self._db.engine.connect() as connection:
            rows = connection.execute(select(table).where(table.c.machine_id.in_(machine_ids)))
            return {row.machine_id: _drift(row) for row in rows}

    def save(self, record: DriftRecord, expected: DriftRecord | None) -> DriftRecord | None:
        """Write ``record`` if the stored state is still ``expected`` (None: absent), in
        one statement (an update of that revision, or an insert); returns what is stored
        now (with its new revision), or None when another process changed it first (the
        caller re-reads). ``record.revision`` is not looked at."""
        saved = self.save_many([(record, expected)])
        return None if saved is None else saved[0]

    def save_many(
        self, changes: Sequence[tuple[DriftRecord, DriftRecord | None]]
    ) -> list[DriftRecord] | None:
        """:meth:`save` of many (record, expected) pairs in one transaction, all or
        nothing: one insert of the new states and one executemany update of the others,
        each only if its revision is still the expected one. None (nothing written) when
        another process changed one of them first."""
        table = cast(Table, DriftState.__table__)  # Core: no ORM unit of work needed
        saved = [
            replace(record, revision=1 if expected is None else expected.revision + 1)
            for record, expected in changes
        ]
        new = [_drift_values(r) for r, (_, expected) in zip(saved, changes, strict=True) if
               expected is None]  # fmt: skip
        moved = [
            ({"machine_id": r.machine_id}, _drift_values(r, _DRIFT_VALUES[1:-1]), expected.revision)
            for r, (_, expected) in zip(saved, changes, strict=True)
            if expected is not None
        ]
        try:
            with self._db.engine.begin() as connection:
                if new:
                    connection.execute(insert(table), new)
                if not update_if_unchanged(connection, table, moved):
                    raise _Moved
        except (IntegrityError, _Moved):  # inserted or moved concurrently: nothing written
            return None
        return saved


class _Moved(Exception):
    """A drift state's revision was not the expected one: roll the transaction back."""


_DRIFT_VALUES = (
    "machine_id", "champion_version", "detector", "status", "change_at", "job_id",
    "updated_at", "revision",
)  # fmt: skip


def _drift_values(record: DriftRecord, names: Sequence[str] = _DRIFT_VALUES) -> dict[str, Any]:
    return {name: getattr(record, name) for name in names}


def _drift(row: Row[Any]) -> DriftRecord:
    return DriftRecord(
        machine_id=row.machine_id,
        champion_version=row.champion_version,
        detector=dict(row.detector),
        status=row.status,
        change_at=row.change_at,
        job_id=row.job_id,
        updated_at=row.updated_at,
        revision=row.revision,
    )
