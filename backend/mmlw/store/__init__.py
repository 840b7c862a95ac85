"""Persistence: SQLAlchemy 2 over SQLite (default) or PostgreSQL, schema by Alembic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmlw.store.alerts import AlertsRepository
from mmlw.store.api_keys import ApiKeysRepository
from mmlw.store.database import Database
from mmlw.store.dead_letters import DEFAULT_BODY_LIMIT, DeadLetterOut, DeadLettersRepository
from mmlw.store.deliveries import DeliveriesRepository
from mmlw.store.deployment import DeploymentIdentity, DeploymentRepository
from mmlw.store.jobs import JobsRepository
from mmlw.store.lifecycle import AliasHistoryRepository, DriftStatesRepository
from mmlw.store.machines import MachinesRepository
from mmlw.store.readings import IngestOutcome, ReadingsRepository, StoredBatch
from mmlw.store.scores import ScoreRecord, ScoresRepository, StoredScores
from mmlw.store.silences import SilencesRepository
from mmlw.store.streams import StreamCheckpoint, StreamsRepository

__all__ = [
    "Database",
    "DeadLetterOut",
    "DeploymentIdentity",
    "IngestOutcome",
    "ScoreRecord",
    "Store",
    "StoredBatch",
    "StoredScores",
    "StreamCheckpoint",
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
    api_keys: ApiKeysRepository
    streams: StreamsRepository
    deployment: DeploymentRepository

    @classmethod
    def open(
        cls, url: str, *, migrate: bool = True, dead_letter_body_limit: int = DEFAULT_BODY_LIMIT
    ) -> Store:
        """Every repository over the database at ``url``, migrated first (processes pass
        ``migrate=False``: then a schema older than the code's is :class:`SchemaOutdated`);
        dead letters keep the first ``dead_letter_body_limit`` bytes of a body."""
        database = Database(url)
        if migrate:
            database.migrate()
        else:
            database.require_current()
        return cls(
            database=database,
            machines=MachinesRepository(database),
            readings=ReadingsRepository(database),
            scores=ScoresRepository(database),
            jobs=JobsRepository(database),
            dead_letters=DeadLettersRepository(database, body_limit=dead_letter_body_limit),
            alerts=AlertsRepository(database),
            silences=SilencesRepository(database),
            deliveries=DeliveriesRepository(database),
            alias_history=AliasHistoryRepository(database),
            streams=StreamsRepository(database),
            drift=DriftStatesRepository(database),
            api_keys=ApiKeysRepository(database),
            deployment=DeploymentRepository(database),
        )

    def observability_totals(self) -> dict[str, Any]:
        """Counts for /metrics: readings, scores, dead letters ever recorded, alerts and
        deliveries."""
        from sqlalchemy import func, select

        from mmlw.store.tables import Alert, Delivery, Machine

        with self.database.session() as session:
            readings = session.scalar(select(func.coalesce(func.sum(Machine.n_readings), 0)))
            alerts = dict(
                session.execute(select(Alert.state, func.count()).group_by(Alert.state)).all()
            )
            deliveries = dict(
                session.execute(
                    select(Delivery.status, func.count()).group_by(Delivery.status)
                ).all()
            )
        return {
            "readings": int(readings or 0),
            "scores": self.scores.count(),
            "dead_letters": self.dead_letters.ever_recorded(),  # a purge keeps it
            "alerts": {str(k): int(v) for k, v in alerts.items()},
            "deliveries": {str(k): int(v) for k, v in deliveries.items()},
        }

    def close(self) -> None:
        self.database.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
