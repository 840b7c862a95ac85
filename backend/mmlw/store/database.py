"""Engine, sessions and migrations for one database URL (SQLite or PostgreSQL).

Only ``mmlw db upgrade`` (and the self-contained demo, bench and test databases)
migrate; every other process checks at start that the schema is the one its code
needs (:meth:`Database.require_current`) and stops with one line when it is older.
Concurrent upgrades of one PostgreSQL database take turns on an advisory lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from mmlw.errors import SchemaOutdated

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["MIGRATIONS_DIR", "Database", "head_revision"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

# pg_advisory_xact_lock(MIGRATION_LOCK, hashtext(current_database())): one lock per
# database ("MMLW" in ASCII, then the database), released when the migration commits
MIGRATION_LOCK = 0x4D4D4C57

log = logging.getLogger(__name__)


def _alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The schema revision this code needs: the newest migration."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise RuntimeError(f"no migrations under {MIGRATIONS_DIR}")
    return head


def _known_revision(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(_alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """Owns the engine; hands out sessions that commit on success, roll back on error."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
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
        """The schema revision the database is at (None: never migrated)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

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
        with self.engine.begin() as connection:
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
