"""API keys at rest: digests and scopes, never the keys themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update

from mmlw.errors import NotFound
from mmlw.security.keys import Scope, digest, generate_key
from mmlw.store.database import Database
from mmlw.store.tables import ApiKey, utcnow

__all__ = ["ApiKeyOut", "ApiKeysRepository"]


@dataclass(frozen=True)
class ApiKeyOut:
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def _out(row: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        row.id, row.name, row.prefix, list(row.scopes), row.created_at, row.revoked_at,
        row.last_used_at,
    )  # fmt: skip


class ApiKeysRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def create(self, name: str, scopes: list[str]) -> tuple[str, ApiKeyOut]:
        """A new key; the key itself is returned once and never stored."""
        if not scopes:
            raise ValueError("scopes: give at least one of ingest, read, operate, admin")
        checked = sorted({Scope(s).value for s in scopes})
        key = generate_key()
        row = ApiKey(
            name=name, prefix=key[:12], digest=digest(key), scopes=checked, created_at=utcnow()
        )
        with self._db.session() as session:
            session.add(row)
            session.flush()
            return key, _out(row)

    def verify(self, key: str) -> ApiKeyOut | None:
        """The active key with this value (None: unknown or revoked)."""
        with self._db.session() as session:
            row = session.scalar(
                select(ApiKey).where(ApiKey.digest == digest(key), ApiKey.revoked_at.is_(None))
            )
            if row is None:
                return None
            row.last_used_at = utcnow()
            return _out(row)

    def any_active(self) -> bool:
        with self._db.session() as session:
            count = session.scalar(
                select(func.count()).select_from(ApiKey).where(ApiKey.revoked_at.is_(None))
            )
            return bool(count)

    def list(self) -> list[ApiKeyOut]:
        with self._db.session() as session:
            return [_out(r) for r in session.scalars(select(ApiKey).order_by(ApiKey.id))]

    def revoke(self, key_id: int) -> ApiKeyOut:
        with self._db.session() as session:
            session.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            row = session.get(ApiKey, key_id)
            if row is None:
                raise NotFound(f"api key {key_id} not found")
            return _out(row)
