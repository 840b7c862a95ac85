"""A deployment never uses another's models: each MMLW database has a random id, the
deployment claims its registered-model prefix on its MLflow experiment with it, and a
process of another deployment pointed at the same MLflow store and prefix stops at start
with one line. The default MLflow store of a deployment is named after its database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from mmlw.cli import main
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.registry.ownership import ForeignRegistry, check_owner, claim_tag
from mmlw.settings import Settings
from mmlw.store import Database, Store
from tests.conftest import TEST_SIGNING_KEY, _create_pg_database, _drop_pg_database
from tests.integration.test_cli_failures import assert_one_clear_line, mmlw, mmlw_env


@pytest.fixture
def pg_url(postgres_admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database (not a copy of the test template: a copy would
    carry the template's identity)."""
    name, url = _create_pg_database(postgres_admin_url)
    try:
        yield url
    finally:
        _drop_pg_database(postgres_admin_url, name)


def _registry(tracking_uri: str, prefix: str, experiment: str, root: Path) -> MlflowRegistry:
    return MlflowRegistry(
        tracking_uri,
        signing_key=TEST_SIGNING_KEY.encode(),
        experiment=experiment,
        artifact_root=root / "artifacts",
        model_prefix=prefix,
    )


def _claim(registry: MlflowRegistry, store: Store) -> None:
    identity = store.deployment.identity()
    registry.claim(identity.id, had_models=identity.had_models, database_url=store.database.url)


def _claims(registry: MlflowRegistry) -> dict[str, str]:
    found = registry.client.get_experiment_by_name(registry.experiment)
    return {k: v for k, v in (found.tags or {}).items() if k.startswith("mmlw.deployment_id")}


def test_a_database_gets_one_random_identity_that_never_changes(database_url: str) -> None:
    with Store.open(database_url) as store:
        first = store.deployment.identity()
    with Store.open(database_url) as store:  # migrating again creates nothing new
        assert store.deployment.identity() == first
    assert len(first.id) == 32 and int(first.id, 16) >= 0
    assert first.had_models is False


def test_a_second_deployment_on_the_same_store_and_prefix_is_refused_with_one_line(
    sqlite_store: Store, pg_url: str, any_tracking_uri: str, unique_prefix: str, tmp_path: Path
) -> None:
    tracking_uri = any_tracking_uri  # the embedded store and an `mlflow server`
    experiment = f"x{uuid.uuid4().hex[:10]}"
    first = _registry(tracking_uri, unique_prefix, experiment, tmp_path)
    _claim(first, sqlite_store)
    owner = sqlite_store.deployment.identity().id
    assert _claims(first) == {claim_tag(unique_prefix): owner}
    _claim(first, sqlite_store)  # its own claim again: nothing changes

    with Store.open(pg_url) as other:
        assert other.deployment.identity().id != owner
        second = _registry(tracking_uri, unique_prefix, experiment, tmp_path)
        with pytest.raises(ForeignRegistry) as refused:
            _claim(second, other)
        message = str(refused.value)
        assert "\n" not in message
        assert f"deployment {owner[:8]}'s models" in message
        assert tracking_uri in message and pg_url.split("@")[-1] in message
        assert "MMLW_MLFLOW_TRACKING_URI" in message

        # the same store and experiment with a prefix of its own: no collision
        own_prefix = f"{unique_prefix}b-"
        _claim(_registry(tracking_uri, own_prefix, experiment, tmp_path), other)
        assert _claims(first)[claim_tag(own_prefix)] == other.deployment.identity().id
    assert _claims(first)[claim_tag(unique_prefix)] == owner


def test_a_fresh_mlflow_store_is_adopted(sqlite_store: Store, tmp_path: Path) -> None:
    registry = _registry(f"sqlite:///{tmp_path / 'fresh.db'}", "mmlw-", "mmlw", tmp_path)
    _claim(registry, sqlite_store)
    assert _claims(registry) == {"mmlw.deployment_id.mmlw-": sqlite_store.deployment.identity().id}
    assert registry.experiment_id() == registry.client.get_experiment_by_name("mmlw").experiment_id


def test_an_unclaimed_experiment_without_models_is_adopted(
    sqlite_store: Store, tracking_uri: str, unique_prefix: str, tmp_path: Path
) -> None:
    experiment = f"x{uuid.uuid4().hex[:10]}"
    unclaimed = _registry(tracking_uri, unique_prefix, experiment, tmp_path)
    unclaimed.experiment_id()  # created by an MMLW older than the identity
    assert _claims(unclaimed) == {}
    registry = _registry(tracking_uri, unique_prefix, experiment, tmp_path)
    _claim(registry, sqlite_store)
    assert _claims(registry) == {claim_tag(unique_prefix): sqlite_store.deployment.identity().id}


def _upgraded_with_history(url: str) -> Store:
    """A database that recorded an alias move before it got its identity (an MMLW older
    than migration 0011), then upgraded."""
    database = Database(url)
    database.migrate("0010")
    with database.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO alias_events (machine_id, alias, from_version, to_version, at, "
                "actor, reason, details) VALUES ('press-1', 'champion', NULL, 1, "
                "'2026-01-01 00:00:00', 'test', 'first model', '{}')"
            )
        )
    database.dispose()
    return Store.open(url)


def test_unclaimed_models_under_the_prefix_are_only_adopted_by_a_database_older_than_them(
    sqlite_store: Store, tracking_uri: str, unique_prefix: str, tmp_path: Path
) -> None:
    experiment = f"x{uuid.uuid4().hex[:10]}"
    older = _registry(tracking_uri, unique_prefix, experiment, tmp_path)
    older.experiment_id()
    older.client.create_registered_model(f"{unique_prefix}press-1")  # before identities

    with pytest.raises(ForeignRegistry, match="another deployment's \\(unclaimed\\) models"):
        _claim(_registry(tracking_uri, unique_prefix, experiment, tmp_path), sqlite_store)
    assert _claims(older) == {}

    with _upgraded_with_history(f"sqlite:///{tmp_path / 'old.db'}") as upgraded:
        assert upgraded.deployment.identity().had_models is True
        _claim(_registry(tracking_uri, unique_prefix, experiment, tmp_path), upgraded)
        assert _claims(older) == {claim_tag(unique_prefix): upgraded.deployment.identity().id}


def _second_deployment_env(
    tmp_path: Path, pg_url: str, tracking_uri: str, prefix: str, experiment: str
) -> dict[str, str]:
    return mmlw_env(
        tmp_path / "second",
        MMLW_DATABASE_URL=pg_url,
        MMLW_MLFLOW_TRACKING_URI=tracking_uri,
        MMLW_MLFLOW_EXPERIMENT=experiment,
        MMLW_MODELS__REGISTERED_MODEL_PREFIX=prefix,
        MMLW_MODELS__SIGNING_KEY=TEST_SIGNING_KEY,
        # checked before any connection: a broker that is down is never reached
        MMLW_BROKER__URL="amqp://guest:guest@127.0.0.1:1//",
    )


def test_processes_of_a_second_deployment_stop_at_start_with_one_line(
    sqlite_store: Store, pg_url: str, tracking_uri: str, unique_prefix: str, tmp_path: Path
) -> None:
    experiment = f"x{uuid.uuid4().hex[:10]}"
    _claim(_registry(tracking_uri, unique_prefix, experiment, tmp_path), sqlite_store)
    owner = sqlite_store.deployment.identity().id[:8]
    Store.open(pg_url).close()  # `mmlw db upgrade` of the second deployment
    env = _second_deployment_env(tmp_path, pg_url, tracking_uri, unique_prefix, experiment)

    code, output = mmlw("api", env=env)  # the real command, in its own process
    assert code == 1, output
    assert_one_clear_line(code, output, f"deployment {owner}'s models", "MMLW_MLFLOW")

    # the prefork worker checks in a forked child before Celery starts; `mmlw train`
    # opens the registry like every command that uses it, before any work
    for args in (["worker", "--pool", "prefork"], ["train", "press-1", "--inline"]):
        result = CliRunner().invoke(main, args, env=env)
        assert result.exit_code == 1, result.output
        assert_one_clear_line(result.exit_code, result.output, f"deployment {owner}'s models")


def test_a_deployments_default_mlflow_store_is_named_after_its_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    demo = Settings(data_dir=data_dir)
    assert demo.resolved_tracking_uri == f"sqlite:///{data_dir / 'mlflow.db'}"
    default_db = Settings(data_dir=data_dir, database_url=demo.resolved_database_url)
    assert default_db.resolved_tracking_uri == demo.resolved_tracking_uri

    def uri(database_url: str, cwd: Path) -> str:
        cwd.mkdir(parents=True, exist_ok=True)
        monkeypatch.chdir(cwd)
        return Settings(data_dir=data_dir, database_url=database_url).resolved_tracking_uri

    pg = uri("postgresql+psycopg://mmlw:a@db.example:5432/mmlw", tmp_path / "a")
    assert pg.startswith(f"sqlite:///{data_dir / 'mlflow' / 'mmlw-'}") and pg.endswith(".db")
    assert pg != demo.resolved_tracking_uri
    # neither the working directory, the driver, the password nor a default port moves it
    assert uri("postgresql://mmlw:b@db.example/mmlw", tmp_path / "b") == pg
    # another database, host or port is another store
    others = {
        uri("postgresql://mmlw@db.example/mmlw_staging", tmp_path),
        uri("postgresql://mmlw@db2.example/mmlw", tmp_path),
        uri("postgresql://mmlw@db.example:5433/mmlw", tmp_path),
        uri(f"sqlite:///{tmp_path / 'other.db'}", tmp_path),
    }
    assert len(others) == 4 and pg not in others
    given = "http://mlflow.example:5000"
    assert Settings(data_dir=data_dir, mlflow_tracking_uri=given).resolved_tracking_uri == given


def test_the_refusal_names_both_stores_without_their_passwords() -> None:
    with pytest.raises(ForeignRegistry) as refused:
        check_owner(
            "0123456789abcdef",
            "fedcba9876543210",
            has_prefixed_models=False,
            had_models=True,
            tracking_uri="postgresql://mlflow:s3cret-a@db:5432/mlflow",
            database_url="postgresql+psycopg://mmlw:s3cret-b@db:5432/mmlw",
        )
    message = str(refused.value)
    assert "s3cret" not in message and "\n" not in message
    assert "deployment 01234567's models" in message
    assert "postgresql://mlflow:***@db:5432/mlflow" in message
    assert "postgresql+psycopg://mmlw:***@db:5432/mmlw" in message
    # a prefix that is no plain tag key is claimed under a digest of it
    assert claim_tag("plant 1/") == claim_tag("plant 1/") != claim_tag("plant 2/")
    assert claim_tag("plant 1/").startswith("mmlw.deployment_id.sha256-")
