"""What one bench run owns and removes afterwards: a broker namespace, a fresh database
(a new PostgreSQL database, or a SQLite file) and an MLflow SQLite store in a temp dir.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pika
import sqlalchemy as sa

from mmlw.messaging.pika_publisher import pika_url
from mmlw.messaging.topology import Topology
from mmlw.settings import Settings

__all__ = ["Sandbox", "delete_topology", "sandbox", "settings_env"]


@dataclass(frozen=True)
class Sandbox:
    settings: Settings
    directory: Path

    @property
    def topology(self) -> Topology:
        return Topology.from_settings(self.settings.broker)


# the broker settings a bench run passes on to its children (MMLW_BROKER__... in its own
# environment sets them, e.g. MMLW_BROKER__PREDICT_BATCHES_PER_TASK=64 mmlw bench)
_TUNABLES = (
    "predict_prefetch",
    "max_batch_readings",
    "ingest_batch_messages",
    "ingest_batch_delay_ms",
    "ingest_idle_ms",
    "predict_batches_per_task",
    "score_partitions",
    "score_rebalance_s",
    "score_prefetch",
)


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``MMLW_*`` variables that give a child process the same settings."""
    return {
        "MMLW_ENVIRONMENT": settings.environment,
        "MMLW_DATA_DIR": str(settings.data_dir),
        "MMLW_DATABASE_URL": settings.resolved_database_url,
        "MMLW_MLFLOW_TRACKING_URI": settings.resolved_tracking_uri,
        "MMLW_MLFLOW_EXPERIMENT": settings.mlflow_experiment,
        "MMLW_BROKER__URL": settings.broker.url,
        "MMLW_BROKER__NAMESPACE": settings.broker.namespace,
        **{
            f"MMLW_BROKER__{name.upper()}": str(getattr(settings.broker, name))
            for name in _TUNABLES
        },
        "MMLW_MODELS__REGISTERED_MODEL_PREFIX": settings.models.registered_model_prefix,
        "MMLW_MODELS__ALIAS_CACHE_TTL_S": str(settings.models.alias_cache_ttl_s),
        "MMLW_MODELS__SIGNING_KEY": settings.model_signing_key().decode(),
        **_mlflow_login_env(settings),
    }


def _mlflow_login_env(settings: Settings) -> dict[str, str]:
    if settings.mlflow_username is None or settings.mlflow_password is None:
        return {}
    return {
        "MMLW_MLFLOW_USERNAME": settings.mlflow_username,
        "MMLW_MLFLOW_PASSWORD": settings.mlflow_password.get_secret_value(),
    }


def _admin_engine(admin_url: str) -> sa.Engine:
    return sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")


@contextmanager
def sandbox(
    base: Settings,
    *,
    broker_url: str,
    store: str = "postgresql",
    postgres_admin_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
) -> Iterator[Sandbox]:
    """Settings for a throw-away stack; everything it created is removed on exit."""
    run_id = uuid.uuid4().hex[:10]
    namespace = f"bench{run_id}"
    directory = Path(tempfile.mkdtemp(prefix=f"mmlw-bench-{run_id}-"))
    database_name = f"mmlw_bench_{run_id}"
    if store == "postgresql":
        with _admin_engine(postgres_admin_url).connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{database_name}"'))
        database_url = postgres_admin_url.rsplit("/", 1)[0] + f"/{database_name}"
    elif store == "sqlite":
        database_url = f"sqlite:///{directory / 'mmlw.db'}"
    else:
        raise ValueError(f"store: expected 'postgresql' or 'sqlite', got {store!r}")
    settings = base.model_copy(
        update={
            "data_dir": directory / "data",
            "database_url": database_url,
            "mlflow_tracking_uri": f"sqlite:///{directory / 'mlflow.db'}",
            # scorers look at their share every second: a timed run starts spread out
            "broker": base.broker.model_copy(
                update={"url": broker_url, "namespace": namespace, "score_rebalance_s": 1.0}
            ),
            "models": base.models.model_copy(update={"registered_model_prefix": f"{namespace}-"}),
        }
    )
    settings.ensure_data_dir()
    try:
        box = Sandbox(settings, directory)
        yield box
    finally:
        delete_topology(broker_url, box.topology)
        delete_topology(broker_url, Topology(f"{namespace}-plain"))
        delete_topology(broker_url, Topology(f"{namespace}-raw"))
        if store == "postgresql":
            with _admin_engine(postgres_admin_url).connect() as connection:
                connection.execute(
                    sa.text(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)')
                )
        shutil.rmtree(directory, ignore_errors=True)


def delete_topology(amqp_url: str, topology: Topology) -> None:
    """Remove a namespace's queues and exchanges (missing ones are fine)."""
    connection = pika.BlockingConnection(pika.URLParameters(pika_url(amqp_url)))
    try:
        channel = connection.channel()
        for name in topology.queue_names:
            channel.queue_delete(name)
        for name in topology.exchange_names:
            channel.exchange_delete(name)
    finally:
        connection.close()
