"""Create the PostgreSQL database a URL names, so ``mmlw db upgrade`` works on a fresh
server; when its user may not, say exactly what SQL an administrator runs."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from mmlw.errors import ServiceUnavailable

__all__ = ["create_database_sql", "ensure_database"]

MAINTENANCE_DATABASE = "postgres"
_DUPLICATE_DATABASE = "42P04"


def _quote(name: str) -> str:
    """A PostgreSQL identifier, always quoted (keeps case and any character).

    >>> _quote('My-DB')
    '"My-DB"'
    """
    return '"' + name.replace('"', '""') + '"'


def create_database_sql(url: str | URL) -> str:
    """The statement that creates ``url``'s database, owned by ``url``'s user.

    >>> create_database_sql("postgresql+psycopg://mmlw:pw@db/My-DB")
    'CREATE DATABASE "My-DB" OWNER "mmlw"'
    """
    target = make_url(url)
    sql = f"CREATE DATABASE {_quote(target.database or '')}"
    return f"{sql} OWNER {_quote(target.username)}" if target.username else sql


def _first_line(error: BaseException) -> str:
    source = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(source).splitlines() if line.strip()]
    return lines[0] if lines else type(source).__name__


def _connects(url: URL) -> DBAPIError | None:
    """None if ``url`` can be connected to, else why not."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect():
            return None
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()


def ensure_database(url: str) -> str | None:
    """Create the PostgreSQL database ``url`` names if it does not exist, through the
    ``postgres`` maintenance database; returns its name if it was created, else None
    (SQLite, it exists, or the server cannot be reached: connecting later says why).
    :class:`ServiceUnavailable` with the SQL to run when it is missing and cannot be
    created (the user lacks CREATEDB)."""
    target = make_url(url)
    if target.get_backend_name() != "postgresql" or not target.database:
        return None
    failure = _connects(target)
    if failure is None:
        return None
    name = target.database
    admin = create_engine(
        target.set(database=MAINTENANCE_DATABASE), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    try:
        with admin.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if exists is not None:
                return None  # connecting failed for another reason: migrating says which
            connection.exec_driver_sql(f"CREATE DATABASE {_quote(name)}")
    except DBAPIError as exc:
        state = getattr(exc.orig, "sqlstate", None)
        if state == _DUPLICATE_DATABASE:
            return None  # created meanwhile by another process
        if state is None and "does not exist" not in str(failure.orig):
            return None  # the server cannot be reached at all: connecting later says why
        user = target.username or "(default user)"
        raise ServiceUnavailable(
            f"database {name!r} does not exist and user {user!r} cannot create it "
            f"({_first_line(exc)}); ask an administrator to run: {create_database_sql(target)};"
        ) from exc
    finally:
        admin.dispose()
    return name
