"""Persistence: SQLAlchemy 2 over SQLite (default) or PostgreSQL, schema by Alembic."""

from __future__ import annotations

from dataclasses import dataclass

from backend.store.alerts import AlertsRepository, DeliveriesRepository, SilencesRepository
from backend.store.database import Database
from backend.store.dead_letters import DeadLetterOut, DeadLettersRepository
from backend.store.jobs import JobsRepository
from backend.store.lifecycle import AliasHistoryRepository, DriftStatesRepository
from backend.store.machines import MachinesRepository
from backend.store.readings import IngestOutcome, ReadingsRepository, StoredBatch
from backend.store.scores import ScoreRecord, ScoresRepository, StoredScores

__all__ = [
    "Database",
    "DeadLetterOut",
    "IngestOutcome",
    "ScoreRecord",
    "Store",
    "StoredBatch",
    "StoredScores",
]


@dataclass(frozen=True)
class Store:
    """Every repository over one database."""

    database: Database
    machines: MachinesRepository
    readings: ReadingsRepository
    scores: ScoresRepository
    jobs: JobsRepository
    dead_letters: DeadLettersRepository
    alerts: AlertsRepository
    silences: SilencesRepository
    deliveries: DeliveriesRepository
    alias_history: AliasHistoryRepository
    drift: DriftStatesRepository

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Store:
        database = Database(url)
        if migrate:
            database.migrate()
        return cls(
            database=database,
            machines=MachinesRepository(database),
            readings=ReadingsRepository(database),
            scores=ScoresRepository(database),
            jobs=JobsRepository(database),
            dead_letters=DeadLettersRepository(database),
            alerts=AlertsRepository(database),
            silences=SilencesRepository(database),
            deliveries=DeliveriesRepository(database),
            alias_history=AliasHistoryRepository(database),
            drift=DriftStatesRepository(database),
        )

    def close(self) -> None:
        self.database.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
