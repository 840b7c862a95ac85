"""Machines: created on first contact, counters kept current by ingest and predict."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mmlw.errors import NotFound
from mmlw.store.database import Database
from mmlw.store.tables import Machine

__all__ = ["MachinesRepository", "touch_machine"]


def touch_machine(
    session: Session,
    machine_id: str,
    columns: list[str],
    now: datetime,
    last_reading_at: datetime,
    n_readings: int,
) -> None:
    """Create the machine if new, then count ``n_readings`` more (one statement each)."""
    dialect = session.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        dialect_insert(Machine)
        .values(
            id=machine_id,
            columns=columns,
            first_seen=now,
            last_seen=now,
            last_reading_at=None,
            n_readings=0,
            n_scored=0,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )
    machine = session.get(Machine, machine_id, with_for_update=True)
    assert machine is not None
    machine.columns = columns
    machine.last_seen = now
    if machine.last_reading_at is None or last_reading_at > machine.last_reading_at:
        machine.last_reading_at = last_reading_at
    machine.n_readings += n_readings


class MachinesRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def recent(self, limit: int) -> list[str]:
        """Ids of the ``limit`` most recently seen machines, newest first."""
        with self._db.session() as session:
            query = select(Machine.id).order_by(Machine.last_seen.desc(), Machine.id).limit(limit)
            return list(session.scalars(query))

    def list(self) -> list[Machine]:
        with self._db.session() as session:
            return list(session.scalars(select(Machine).order_by(Machine.id)))

    def last_seen(self, machine_id: str) -> datetime:
        """When ``machine_id`` last sent readings (NotFound if it never did); one Core
        read, as alert rules ask it for every machine a predict task scores."""
        with self._db.engine.connect() as connection:
            seen = connection.scalar(select(Machine.last_seen).where(Machine.id == machine_id))
        if seen is None:
            raise NotFound(f"machine {machine_id!r} not found")
        return seen

    def get(self, machine_id: str) -> Machine:
        with self._db.session() as session:
            machine = session.get(Machine, machine_id)
        if machine is None:
            raise NotFound(f"machine {machine_id!r} not found")
        return machine

    @staticmethod
    def add_scored(session: Session, machine_id: str, n: int) -> None:
        session.execute(
            update(Machine).where(Machine.id == machine_id).values(n_scored=Machine.n_scored + n)
        )
