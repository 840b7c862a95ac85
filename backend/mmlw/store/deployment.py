"""Which deployment this database belongs to: the identity migration 0011 created."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from mmlw.store.database import Database
from mmlw.store.tables import Deployment

__all__ = ["DeploymentIdentity", "DeploymentRepository"]


@dataclass(frozen=True)
class DeploymentIdentity:
    """``id``: random, one per database, never changed. ``had_models``: the database
    recorded alias moves before it got its id, so untagged MLflow models under its prefix
    predate the identity and are its own."""

    id: str
    created_at: datetime
    had_models: bool


class DeploymentRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def identity(self) -> DeploymentIdentity:
        """The database's identity (the migrations write exactly one row)."""
        with self._db.session() as session:
            row = session.scalars(select(Deployment)).one()
            return DeploymentIdentity(row.id, row.created_at, row.had_models)
