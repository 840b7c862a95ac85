"""Engine, sessions and migrations for one database URL (SQLite or PostgreSQL).

Only ``mmlw db upgrade`` (and the self-contained demo, bench and test databases)
migrate; every other process checks at start that the schema is the one its code
needs (:meth:`Database.require_current`) and stops with one line when it is older.
Concurrent upgrades of one PostgreSQL database take turns on an advisory lock.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from mmlw.alembic_lock import ALEMBIC_LOCK
from mmlw.errors import SchemaOutdated

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS_DIR", "Database", "head_revision"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# pg_advisory_xact_lock(MIGRATION_LOCK, hashtext(current_database())): one lock per
# database ("MMLW" in ASCII, then the database), released when the migration commits
MIGRATION_LOCK = 0x4D4D4C57
VERSION_TABLE = "alembic_version"  # Alembic's default, which migrations/env.py keeps
_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(\S+)", re.MULTILINE)

log = logging.getLogger(__name__)


def _alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _revision_graph() -> dict[str, str | None]:
    """Each migration's revision and the one it revises, read from the migration files'
    ``revision = "..."`` / ``down_revision = ...`` lines. Checking a database's revision
    is every command's start-up cost: this reads a dozen small files where Alembic's
    script directory would import Alembic and every migration module."""
    graph: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        found = dict(_REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        if "revision" in found:
            down = found.get("down_revision", "None")
            graph[found["revision"].strip("'\"")] = None if down == "None" else down.strip("'\"")
    return graph


def head_revision() -> str:
    """The schema revision this code needs: the newest migration (the one no other
    migration revises)."""
    graph = _revision_graph()
    heads = sorted(set(graph) - set(graph.values()))
    if len(heads) != 1:  # pragma: no cover - the package ships one linear history
        raise RuntimeError(f"expected one migration head under {MIGRATIONS_DIR}, got {heads}")
    return heads[0]


def _known_revision(revision: str) -> bool:
    return revision in _revision_graph()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


#: a pooled connection idle longer than this is pinged before it is handed out
PING_IDLE_S = 1.0


def _checked_in(_dbapi_connection: Any, record: Any) -> None:
    record.info["mmlw_checked_in"] = time.monotonic()


def _ping_if_idle(dialect: Any, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Ping a pooled connection that sat idle over :data:`PING_IDLE_S` before handing it
    out; a dead one is replaced (SQLAlchemy retries the checkout on DisconnectionError).
    ``pool_pre_ping`` pings at every checkout: a scorer round checks out a connection
    for each of its dozen queries, and the pings were 6 % of a fleet scorer's time. A
    connection used within the last second that the server dropped since fails its
    statement instead; SQLAlchemy then invalidates the whole pool, and the callers'
    retries (ServiceUnavailable) get fresh connections."""
    checked_in = record.info.get("mmlw_checked_in")
    if checked_in is None or time.monotonic() - checked_in <= PING_IDLE_S:
        return
    try:
        alive = dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as exc:
        raise DisconnectionError(f"pooled connection is gone: {exc}") from exc
    if not alive:
        raise DisconnectionError("pooled connection is gone")


class Database:
    """Owns the engine; hands out sessions that commit on success, roll back on error."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        event.listen(self.engine, "checkin", _checked_in)
        event.listen(self.engine, "checkout", partial(_ping_if_idle, self.engine.dialect))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def revision(self) -> str | None:
        """The schema revision the database is at (None: never migrated), read from
        Alembic's version table with one query (without importing Alembic)."""
        with self.engine.connect() as connection:
            if not inspect(connection).has_table(VERSION_TABLE):
                return None
            rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        if len(rows) > 1:  # pragma: no cover - one linear history has one head
            raise SchemaOutdated(
                f"database has several schema revisions: {sorted(r[0] for r in rows)}"
            )
        return rows[0][0] if rows else None

    def require_current(self) -> None:
        """:class:`SchemaOutdated` (one line: what to run) when the schema is older than
        this code needs. A revision this code does not know (a newer MMLW migrated the
        database) is logged, not refused: migrations only add."""
        current, head = self.revision(), head_revision()
        if current == head:
            return
        if current is not None and not _known_revision(current):
            log.warning(
                "database at revision %s, unknown to this MMLW (it needs %s)", current, head
            )
            return
        raise SchemaOutdated(
            f"database at revision {current or 'none (empty)'}, code needs {head}: "
            "run `mmlw db upgrade`"
        )

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with Alembic (idempotent). On PostgreSQL the
        whole upgrade holds an advisory lock of this database, so a second concurrent
        upgrade waits for the first, then finds nothing left to do."""
        from alembic import command

        config = _alembic_config(self.url)
        # Alembic's migration context is one per process (see mmlw.alembic_lock)
        with ALEMBIC_LOCK, self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                self._lock_migrations(connection)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    @staticmethod
    def _lock_migrations(connection: Connection) -> None:
        """Take this database's migration lock for the transaction; say so when another
        upgrade holds it."""
        args = {"key": MIGRATION_LOCK}
        taken = connection.execute(
            text("SELECT pg_try_advisory_xact_lock(:key, hashtext(current_database()))"), args
        ).scalar()
        if not taken:
            log.info("another migration of this database is running; waiting for it")
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key, hashtext(current_database()))"), args
            )

    def dispose(self) -> None:
        self.engine.dispose()
