"""``mmlw db upgrade`` on a PostgreSQL server where the database does not exist yet: it
creates it (through the ``postgres`` maintenance database, the name quoted), then migrates;
a user who may not create databases gets one line with the SQL an administrator runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mmlw.store.provisioning import create_database_sql, ensure_database
from tests.integration.test_cli_failures import assert_one_clear_line, mmlw, mmlw_env

pytestmark = pytest.mark.postgres


def _admin(admin_url: str) -> sa.Engine:
    return sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def _exists(admin_url: str, name: str) -> bool:
    engine = _admin(admin_url)
    try:
        with engine.connect() as connection:
            query = sa.text("SELECT 1 FROM pg_database WHERE datname = :name")
            return connection.execute(query, {"name": name}).first() is not None
    finally:
        engine.dispose()


def _execute(admin_url: str, sql: str) -> None:
    engine = _admin(admin_url)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(sql)
    finally:
        engine.dispose()


@pytest.fixture
def new_database(postgres_admin_url: str) -> Iterator[tuple[str, str]]:
    """A database name nobody has created (mixed case and a dash: it must be quoted) and
    its URL; dropped afterwards if it was created."""
    name = f"MMLW-new_{uuid.uuid4().hex[:10]}"
    yield name, postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
    _execute(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def role_without_createdb(postgres_admin_url: str) -> Iterator[str]:
    role = f"mmlw_nocreate_{uuid.uuid4().hex[:8]}"
    _execute(postgres_admin_url, f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
    yield role
    _execute(postgres_admin_url, f'DROP ROLE IF EXISTS "{role}"')


def test_db_upgrade_creates_a_missing_database_then_migrates(
    tmp_path: Path, postgres_admin_url: str, new_database: tuple[str, str]
) -> None:
    name, url = new_database
    env = mmlw_env(tmp_path / "data", MMLW_DATABASE_URL=url)
    code, output = mmlw("db", "upgrade", env=env)
    assert code == 0, output
    assert f"created database {name}" in output and "at head" in output, output
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"machines", "reading_batches", "jobs", "deliveries"} <= tables

    code, again = mmlw("db", "upgrade", env=env)
    assert code == 0 and "created database" not in again and "at head" in again, again


def test_db_upgrade_without_permission_says_what_sql_to_run(
    tmp_path: Path,
    postgres_admin_url: str,
    new_database: tuple[str, str],
    role_without_createdb: str,
) -> None:
    name, admin_style_url = new_database
    parts = sa.make_url(admin_style_url)
    url = parts.set(username=role_without_createdb, password=None)
    env = mmlw_env(tmp_path / "data", MMLW_DATABASE_URL=url.render_as_string(False))
    code, output = mmlw("db", "upgrade", env=env)
    sql = f'CREATE DATABASE "{name}" OWNER "{role_without_createdb}";'
    assert_one_clear_line(code, output, "does not exist", "permission denied", sql)
    assert not _exists(postgres_admin_url, name)


def test_ensure_database_leaves_sqlite_and_existing_databases_alone(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    assert ensure_database(f"sqlite:///{tmp_path / 'x.db'}") is None
    assert not (tmp_path / "x.db").exists()
    assert ensure_database(postgres_admin_url) is None


def test_create_database_sql_quotes_names() -> None:
    assert create_database_sql("postgresql+psycopg://a@h/x") == 'CREATE DATABASE "x" OWNER "a"'
    assert (
        create_database_sql('postgresql+psycopg://u@h/we"ird')
        == 'CREATE DATABASE "we""ird" OWNER "u"'
    )
