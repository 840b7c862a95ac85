"""Only ``mmlw db upgrade`` migrates. Every other process checks the database's schema
revision as it starts and, when it is behind the code, stops with one line that says what
to run; two upgrades of one PostgreSQL database at once take turns on an advisory lock."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient

from mmlw.api.app import create_app
from mmlw.cli import main
from mmlw.errors import SchemaOutdated
from mmlw.settings import Settings
from mmlw.store import Database, Store
from mmlw.store.database import head_revision
from tests.integration.test_cli_failures import assert_one_clear_line, mmlw, mmlw_env

PREVIOUS = "0009"  # the revision before the newest


def _stale_sqlite(data_dir: Path) -> str:
    """A SQLite database in ``data_dir`` migrated only to :data:`PREVIOUS`."""
    url = f"sqlite:///{data_dir / 'mmlw.db'}"
    database = Database(url)
    try:
        database.migrate(PREVIOUS)
        assert database.revision() == PREVIOUS
    finally:
        database.dispose()
    return url


def _invoke(data_dir: Path, *args: str) -> tuple[int, str]:
    env = {
        "MMLW_ENVIRONMENT": "test",
        "MMLW_DATA_DIR": str(data_dir),
        "MMLW_DATABASE_URL": None,
        # worker and ingest refuse memory://; the schema is checked before any connection
        "MMLW_BROKER__URL": "amqp://guest:guest@127.0.0.1:1//",
        "MMLW_BROKER__NAMESPACE": f"t{uuid.uuid4().hex[:10]}",
    }
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_the_newest_migration_is_what_the_code_needs() -> None:
    assert head_revision() > PREVIOUS


@pytest.mark.parametrize(
    "command", [("api",), ("worker",), ("scorer",), ("ingest",), ("machines",), ("alerts", "list")]
)
def test_a_stale_database_stops_a_process_at_start_with_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    _stale_sqlite(tmp_path)
    code, output = _invoke(tmp_path, *command)
    expected = f"database at revision {PREVIOUS}, code needs {head_revision()}"
    line = assert_one_clear_line(code, output, expected, "run `mmlw db upgrade`")
    assert code == 1, line


def test_an_empty_database_is_not_migrated_by_a_process(tmp_path: Path) -> None:
    code, output = _invoke(tmp_path, "machines")
    assert_one_clear_line(code, output, "database at revision none", "mmlw db upgrade")
    database = Database(f"sqlite:///{tmp_path / 'mmlw.db'}")
    try:
        assert database.revision() is None  # still nothing: the command migrated nothing
    finally:
        database.dispose()


def test_mmlw_api_as_a_process_exits_non_zero_with_the_line(tmp_path: Path) -> None:
    _stale_sqlite(tmp_path)
    code, output = mmlw("api", "--port", "1", env=mmlw_env(tmp_path))
    assert_one_clear_line(code, output, f"revision {PREVIOUS}", "run `mmlw db upgrade`")


def test_after_db_upgrade_the_same_commands_start(tmp_path: Path) -> None:
    _stale_sqlite(tmp_path)
    code, output = _invoke(tmp_path, "db", "upgrade")
    assert code == 0, output
    code, output = _invoke(tmp_path, "machines")
    assert code == 0, output
    assert Database(f"sqlite:///{tmp_path / 'mmlw.db'}").revision() == head_revision()


def test_the_app_refuses_a_stale_database_at_start_up(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(database_url=_stale_sqlite(tmp_path))
    with (
        pytest.raises(SchemaOutdated, match=f"revision {PREVIOUS}"),
        TestClient(create_app(settings)),
    ):
        pass


def test_a_store_opened_without_migrating_checks_the_revision(tmp_path: Path) -> None:
    url = _stale_sqlite(tmp_path)
    with pytest.raises(SchemaOutdated):
        Store.open(url, migrate=False)
    Store.open(url).close()  # the test fixtures' way: migrated
    Store.open(url, migrate=False).close()


@pytest.fixture
def empty_postgres(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped afterwards."""
    name = f"mmlw_race_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield postgres_admin_url.rsplit("/", 1)[0] + f"/{name}"
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_concurrent_upgrades_of_one_postgres_database_all_succeed(empty_postgres: str) -> None:
    """Four threads of one process: they take turns (Alembic's context is one per
    process, so migrations in one process are serialised first); without any lock they
    would create the same tables (and alembic_version) at once and fail. Across
    processes, the database's advisory lock does it (the test below)."""
    upgrades = 4
    start = threading.Barrier(upgrades)
    failures: list[BaseException] = []

    def upgrade() -> None:
        database = Database(empty_postgres)
        try:
            start.wait(timeout=30)
            database.migrate()
        except BaseException as exc:  # collected: the assertion below shows them
            failures.append(exc)
        finally:
            database.dispose()

    threads = [threading.Thread(target=upgrade) for _ in range(upgrades)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    database = Database(empty_postgres)
    try:
        assert database.revision() == head_revision()
        with database.engine.connect() as connection:
            versions = connection.exec_driver_sql("SELECT count(*) FROM alembic_version")
            assert versions.scalar() == 1
    finally:
        database.dispose()


@pytest.mark.postgres
def test_two_mmlw_db_upgrade_processes_at_once_both_succeed(
    tmp_path: Path, empty_postgres: str
) -> None:
    env = mmlw_env(tmp_path / "data", MMLW_DATABASE_URL=empty_postgres)
    results: list[tuple[int, str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(mmlw("db", "upgrade", env=env)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert [code for code, _ in results] == [0, 0], results
    assert Database(empty_postgres).revision() == head_revision()
