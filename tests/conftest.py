"""Shared fixtures: real services on loopback, fresh databases, one MLflow store.

Where a service is absent the tests that need it skip with the reason; under CI=true an
absent service fails the run instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import pytest
from pydantic import SecretStr

from mmlw.ports import free_port
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.settings import BrokerSettings, Settings
from mmlw.store import Store

RABBITMQ_URL = os.environ.get("MMLW_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
POSTGRES_ADMIN_URL = os.environ.get(
    "MMLW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SHARED = Path(__file__).resolve().parents[2] / "shared"
SKAB_DIR = SHARED / "data" / "skab"
NAB_DIR = SHARED / "data" / "nab-dev"
NAB_SCORER = SHARED / "tools" / "nab_score.py"
MLFLOW_AUTH_ENTRYPOINT = (
    Path(__file__).resolve().parents[1] / "docker" / "mlflow-auth-entrypoint.py"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_SIGNING_KEY = "test-model-signing-key-0123456789abcdef"  # signs every test's models


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def unavailable(reason: str) -> NoReturn:
    """Skip (locally) or fail (CI=true): under CI a missing service, tool or data set fails
    the run, never skips."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing service, tool or data set fails the run)",
                    pytrace=False)  # fmt: skip
    pytest.skip(reason)


def require_service(name: str, host: str, port: int) -> None:
    """Skip (locally) or fail (CI=true) when a service is not listening."""
    if not _reachable(host, port):
        unavailable(f"{name} is not reachable on {host}:{port}")


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    require_service("RabbitMQ", "127.0.0.1", 5672)
    return RABBITMQ_URL


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_ADMIN_URL


def _create_pg_database(
    admin_url: str, *, template: str | None = None, name: str | None = None
) -> tuple[str, str]:
    """A new database (name, URL): empty, or a copy of ``template`` (a migrated one, see
    :func:`pg_template`). Copying needs no other connection to the template."""
    import sqlalchemy as sa

    name = name or f"mmlw_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
    engine.dispose()
    return name, admin_url.rsplit("/", 1)[0] + f"/{name}"


def _drop_pg_database(admin_url: str, name: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _worker_id() -> str:
    """The pytest-xdist worker running this process ("main" without xdist)."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def pg_template(postgres_admin_url: str) -> Iterator[str]:
    """One migrated PostgreSQL database per test process (its name says which xdist
    worker), copied by :func:`database_url` instead of migrating each test's database;
    dropped at the end of the session."""
    worker = _worker_id()
    name, url = _create_pg_database(
        postgres_admin_url, name=f"mmlw_tmpl_{worker}_{uuid.uuid4().hex[:8]}"
    )
    try:
        Store.open(url).close()  # disposes its engine: a copy needs the template unused
        yield name
    finally:
        _drop_pg_database(postgres_admin_url, name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per test process, copied by the SQLite fixtures; left in
    rollback-journal mode, so the one file is the whole database (opening a copy turns WAL
    back on)."""
    import sqlite3

    path = tmp_path_factory.mktemp("sqlite-template") / "mmlw.db"
    Store.open(f"sqlite:///{path}").close()
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=DELETE")
    finally:
        connection.close()
    return path


def _migrated_sqlite(template: Path, tmp_path: Path) -> str:
    """A copy of the migrated ``template`` under ``tmp_path``, as a URL."""
    path = tmp_path / "mmlw.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database already migrated to the head revision (a copy of the process's
    template): a SQLite file, or a new PostgreSQL database. Tests of the migrations
    themselves take :func:`empty_database_url`."""
    if request.param == "sqlite":
        yield _migrated_sqlite(request.getfixturevalue("sqlite_template"), tmp_path)
        return
    admin = request.getfixturevalue("postgres_admin_url")
    name, url = _create_pg_database(admin, template=request.getfixturevalue("pg_template"))
    try:
        yield url
    finally:
        _drop_pg_database(admin, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database (never migrated): a SQLite file, or a new PostgreSQL
    database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mmlw.db'}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    name, url = _create_pg_database(admin)
    try:
        yield url
    finally:
        _drop_pg_database(admin, name)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    the_store = Store.open(database_url)
    yield the_store
    the_store.close()


@pytest.fixture
def sqlite_store(sqlite_template: Path, tmp_path: Path) -> Iterator[Store]:
    the_store = Store.open(_migrated_sqlite(sqlite_template, tmp_path))
    yield the_store
    the_store.close()


@pytest.fixture(scope="session")
def mlflow_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="session")
def tracking_uri(mlflow_dir: Path) -> str:
    """One real MLflow store (SQLite) per test session: creating one costs seconds."""
    return f"sqlite:///{mlflow_dir / 'mlflow.db'}"


@pytest.fixture(scope="session")
def registry(tracking_uri: str, mlflow_dir: Path) -> MlflowRegistry:
    reg = MlflowRegistry(
        tracking_uri,
        signing_key=TEST_SIGNING_KEY.encode(),
        artifact_root=mlflow_dir / "artifacts",
    )
    reg.experiment_id()
    return reg


@pytest.fixture
def unique_prefix() -> str:
    """Registered-model prefix unique to one test, so tests share the MLflow store safely."""
    return f"t{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def make_settings(tmp_path: Path, tracking_uri: str, mlflow_dir: Path):  # type: ignore[no-untyped-def]
    """Settings for one test: its own data dir and namespace, the session's MLflow store."""

    def build(
        *, broker_url: str = "memory://", database_url: str | None = None, **updates: object
    ) -> Settings:
        namespace = f"t{uuid.uuid4().hex[:10]}"
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            mlflow_tracking_uri=tracking_uri,
            broker=BrokerSettings(url=broker_url, namespace=namespace),
            environment="test",
        )
        models = settings.models.model_copy(
            update={
                "registered_model_prefix": f"{namespace}-",
                "alias_cache_ttl_s": 0.5,
                "signing_key": SecretStr(TEST_SIGNING_KEY),
            }
        )
        settings = settings.model_copy(update={"models": models, **updates})
        settings.ensure_data_dir()
        (settings.data_dir / "mlartifacts").mkdir(exist_ok=True)
        return settings

    return build


def _shared(path: Path, what: str) -> Path:
    """``path`` under ../shared; skipped locally when absent, a failure under CI=true."""
    if not path.exists():
        unavailable(f"{what} not found at {path}")
    return path


@pytest.fixture(scope="session")
def skab_dir() -> Path:
    return _shared(SKAB_DIR, "SKAB data")


@pytest.fixture(scope="session")
def nab_dir() -> Path:
    """The NAB development subset (``../shared/data/nab-dev``)."""
    return _shared(NAB_DIR, "NAB data")


@pytest.fixture(scope="session")
def nab_reference_scorer() -> Path:
    """The independent NAB scorer (``../shared/tools/nab_score.py``)."""
    return _shared(NAB_SCORER, "NAB reference scorer")


def reference_nab_scores(scorer: Path, nab_dir: Path, detections: Path) -> dict[str, Any]:
    """What ``nab_score.py --threshold 0.5`` reports (its closing JSON line) for a folder of
    0/1 detections laid out like ``nab_dir``."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [
            *(sys.executable, str(scorer), str(detections)),
            *("--labels", str(nab_dir / "labels.json"), "--data-dir", str(nab_dir)),
            *("--threshold", "0.5", "-q"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    scores: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return scores


@contextmanager
def _mlflow_server(
    root: Path, *, options: tuple[str, ...] = (), launcher: tuple[str, ...] = (), **env: str
) -> Iterator[str]:
    """Run ``mlflow server`` (behind ``launcher``, e.g. the image's entrypoint) as compose
    does: its own SQLite store under ``root``, artifacts served by the server, one worker, no
    job runner; yields its URI once ``/health`` answers, stops it on exit."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            *launcher,
            *(sys.executable, "-m", "mlflow", "server", *options),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
            *("--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"),
            *("--serve-artifacts", "--artifacts-destination", str(root / "artifacts")),
        ],
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=root,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (root / "server.log").read_text(errors="replace")[-2000:]
                pytest.fail(f"mlflow server did not start:\n{tail}", pytrace=False)
            time.sleep(0.5)
        yield uri
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def mlflow_server_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An ``mlflow server`` process as compose runs one: its own backend store, artifacts
    served by the server (``--serve-artifacts``), one worker, no job runner. Registration,
    alias moves and loads through it go over MLflow's REST API, as in a deployment."""
    with _mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


@dataclass(frozen=True)
class MlflowAuthServer:
    """An MLflow server that requires a login: its URI, the account MMLW logs in with
    (compose's ``mmlw``) and the administrator's."""

    uri: str
    username: str
    password: str = field(repr=False)
    admin_username: str
    admin_password: str = field(repr=False)
    config_dir: str = ""  # where the entrypoint wrote the auth ini


@pytest.fixture(scope="session")
def mlflow_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowAuthServer]:
    """``mlflow server --app-name basic-auth`` started the way the compose image starts it:
    through ``docker/mlflow-auth-entrypoint.py``, which writes the auth ini (anonymous
    requests refused, default permission NO_PERMISSIONS) and creates the service account."""
    import secrets
    import sys

    root = tmp_path_factory.mktemp("mlflow-auth-server")
    server = MlflowAuthServer(
        uri="",
        username="mmlw",
        password=secrets.token_hex(12),
        admin_username="admin",
        admin_password=secrets.token_hex(12),
        config_dir=str(root),
    )
    with _mlflow_server(
        root,
        options=("--app-name", "basic-auth"),
        launcher=(sys.executable, str(MLFLOW_AUTH_ENTRYPOINT)),
        MLFLOW_AUTH_DATABASE_URI=f"sqlite:///{root / 'auth' / 'basic_auth.db'}",
        MLFLOW_AUTH_CONFIG_DIR=str(root),
        MLFLOW_AUTH_ADMIN_USERNAME=server.admin_username,
        MLFLOW_AUTH_ADMIN_PASSWORD=server.admin_password,
        MLFLOW_SERVICE_USERNAME=server.username,
        MLFLOW_SERVICE_PASSWORD=server.password,
    ) as uri:
        yield replace(server, uri=uri)


#: tests that use the session's ``mlflow server`` process run on one xdist worker (with
#: ``--dist loadgroup``), which then starts it once instead of once per worker
ON_THE_MLFLOW_SERVER = pytest.mark.xdist_group("mlflow-server")


@pytest.fixture(
    scope="session", params=["embedded", pytest.param("server", marks=ON_THE_MLFLOW_SERVER)]
)
def any_tracking_uri(request: pytest.FixtureRequest, tracking_uri: str) -> str:
    """Each MLflow a deployment may use: the embedded SQLite store (the demo's) and an
    ``mlflow server`` process (compose's)."""
    if request.param == "server":
        return str(request.getfixturevalue("mlflow_server_uri"))
    return tracking_uri
