"""Pooled PostgreSQL connections are pinged only after sitting idle, and a dead one is
replaced before a caller sees it (:mod:`mmlw.store.database`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from mmlw.store import database
from mmlw.store.database import Database


def _backend_pid(db: Database) -> int:
    with db.engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
def pg_database(postgres_admin_url: str) -> Iterator[Database]:
    db = Database(postgres_admin_url)  # no schema needed: the server's own database
    yield db
    db.engine.dispose()


def _terminate(url: str, pid: int) -> None:
    admin = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()


def test_a_connection_dropped_by_the_server_while_idle_is_replaced_unseen(
    pg_database: Database, postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_IDLE_S", 0.0)  # every pooled connection is "idle"
    first = _backend_pid(pg_database)
    _terminate(postgres_admin_url, first)
    assert _backend_pid(pg_database) != first  # no error: the checkout pinged and replaced it


def test_a_connection_used_just_now_is_handed_out_without_a_ping(
    pg_database: Database, postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "PING_IDLE_S", 3600.0)
    first = _backend_pid(pg_database)
    _terminate(postgres_admin_url, first)
    # not pinged: the dead connection is handed out and its statement fails ...
    with pytest.raises(OperationalError):
        _backend_pid(pg_database)
    # ... after which SQLAlchemy invalidated the pool: the next caller gets a new one
    assert _backend_pid(pg_database) != first
