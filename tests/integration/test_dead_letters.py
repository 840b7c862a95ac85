"""Dead letters end to end: the repository and its migration on SQLite and PostgreSQL, the
HTTP API against the in-process ``memory://`` pipeline (ingest consumer included), and
``mmlw dlq`` -- with ``dlq replay`` publishing to the real RabbitMQ on loopback.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pika
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from kombu import Connection, Producer

from mmlw.cli import main
from mmlw.errors import NotFound
from mmlw.messaging.pika_publisher import pika_url
from mmlw.messaging.topology import Topology
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas.readings import ReadingsBatch, parse_readings_message
from mmlw.settings import Settings
from mmlw.store import Database, Store
from mmlw.store.database import MIGRATIONS_DIR
from mmlw.workers.context import WorkerContext
from mmlw.workers.simulator import SyntheticMachine
from tests.integration.pipeline import api_with_ingest, delete_topology
from tests.support.wait import wait_for

API = "/api/v1"
START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

Cli = Callable[..., Result]


def batch_of(machine_id: str = "pump-1", n: int = 3, seed: int = 1) -> ReadingsBatch:
    source = SyntheticMachine(machine_id, seed=seed, n_sensors=3, start=START, warmup=100_000)
    return source.read(n).to_batch()


def broken(batch: ReadingsBatch) -> bytes:
    """The batch with a value that breaks the contract: ``values.0.0`` is a string."""
    raw = json.loads(batch.to_wire())
    raw["values"][0][0] = "oops"
    return json.dumps(raw).encode()


def add_dead_letter(store: Store, body: bytes, **kwargs: Any) -> int:
    kwargs.setdefault("source", "amqp")
    kwargs.setdefault("reason", "values.0.0: Input should be a valid number")
    return store.dead_letters.add(body=body, **kwargs)


# --- the repository ----------------------------------------------------------------------


def test_repository_get_list_mark_and_purge(store: Store) -> None:
    first = add_dead_letter(store, b"{not json", routing_key="pump-9", message_id="m-1")
    second = add_dead_letter(store, b"\xff\xfe binary", headers={"x": 1})
    third = add_dead_letter(store, b"{}")

    got = store.dead_letters.get(first)
    assert (got.body, got.routing_key, got.message_id) == (b"{not json", "pump-9", "m-1")
    assert got.replayed_at is None and got.replay_count == 0
    assert store.dead_letters.get(second).headers == {"x": 1}
    with pytest.raises(NotFound, match="dead letter 9999"):
        store.dead_letters.get(9999)
    with pytest.raises(NotFound):
        store.dead_letters.mark_replayed(9999)

    marked = store.dead_letters.mark_replayed(second)
    assert marked.replay_count == 1
    assert marked.replayed_at is not None and marked.replayed_at.tzinfo is not None
    assert store.dead_letters.mark_replayed(second).replay_count == 2
    assert store.dead_letters.get(second).replayed_at is not None

    assert [d.id for d in store.dead_letters.list()] == [third, second, first]
    assert [d.id for d in store.dead_letters.list(include_replayed=False)] == [third, first]
    assert [d.id for d in store.dead_letters.list(1)] == [third]

    assert store.dead_letters.purge() == 0  # no criterion deletes nothing
    assert store.dead_letters.purge([]) == 0
    future = datetime.now(UTC) + timedelta(hours=1)
    assert store.dead_letters.purge(older_than=datetime.now(UTC) - timedelta(hours=1)) == 0
    assert store.dead_letters.purge([first, 9999], older_than=future) == 1
    assert store.dead_letters.count() == 2
    with pytest.raises(ValueError, match="older_than"):
        store.dead_letters.purge(older_than=datetime(2026, 1, 1))
    assert store.dead_letters.purge(everything=True) == 2
    assert store.dead_letters.list() == []


def test_migration_applies_to_a_fresh_database_and_is_idempotent(
    empty_database_url: str,
) -> None:
    database_url = empty_database_url
    database = Database(database_url)
    try:
        database.migrate("0001")
        with database.session() as session:  # a row from before the columns existed
            session.execute(
                sa.text(
                    "INSERT INTO dead_letters (received_at, source, reason, body, headers) "
                    "VALUES (:t, 'amqp', 'old', :b, '{}')"
                ),
                {"t": datetime(2026, 11, 1, tzinfo=UTC), "b": b"old"},
            )
        database.migrate()
        columns = {c["name"] for c in sa.inspect(database.engine).get_columns("dead_letters")}
        assert {"replayed_at", "replay_count"} <= columns
        with database.engine.connect() as conn:
            head = max(p.name[:4] for p in (MIGRATIONS_DIR / "versions").glob("0*.py"))
            assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == head
            if database.engine.dialect.name == "postgresql":  # packed arrays: no pglz
                storage = conn.execute(
                    sa.text(
                        "SELECT c.relname, a.attname, a.attstorage FROM pg_attribute a "
                        "JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname IN "
                        "('reading_batches', 'score_batches') AND a.atttypid = 'bytea'::regtype"
                    )
                ).all()
                assert {(t, c) for t, c, _ in storage} == {
                    ("reading_batches", "timestamps_us"),
                    ("reading_batches", "values"),
                    ("reading_batches", "labels"),
                    ("score_batches", "scores"),
                    ("score_batches", "contributions"),
                    ("score_batches", "contribution_rows"),
                }
                assert {s for _, _, s in storage} == {"e"}
    finally:
        database.dispose()

    for _ in range(2):  # opening again migrates nothing and loses nothing
        store = Store.open(database_url)
        try:
            (old,) = store.dead_letters.list()
            assert (old.body, old.replay_count, old.replayed_at) == (b"old", 0, None)
            assert old.received_at == datetime(2026, 11, 1, tzinfo=UTC)
        finally:
            store.close()


# --- the HTTP API ------------------------------------------------------------------------


@dataclass
class Api:
    client: TestClient
    context: WorkerContext


@pytest.fixture
def running(make_settings: Callable[..., Settings], registry: MlflowRegistry) -> Iterator[Api]:
    """The app on ``memory://`` with the ingest consumer running in a thread."""
    with api_with_ingest(make_settings()) as (client, context):
        yield Api(client, context)


def publish_to_broker(api: Api, routing_key: str, body: bytes, message_id: str) -> None:
    """Publish raw bytes to the readings exchange, as a misbehaving machine would."""
    context = api.context
    with Connection(context.settings.broker.url) as connection:
        channel = connection.channel()
        context.topology.declare(channel)
        Producer(channel, exchange=context.topology.readings_exchange()).publish(
            body, routing_key=routing_key, content_type="application/json", message_id=message_id
        )


def wait_for_dead_letter(client: TestClient, message_id: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        response = client.get(f"{API}/dead-letters")
        assert response.status_code == 200, response.text
        return next((d for d in response.json() if d["message_id"] == message_id), None)

    return wait_for(probe, what=f"dead letter {message_id}")


def stored_readings(client: TestClient, machine_id: str) -> int:
    response = client.get(f"{API}/machines")
    assert response.status_code == 200, response.text
    row = next((m for m in response.json() if m["id"] == machine_id), None)
    return int(row["n_readings"]) if row else 0


def test_api_shows_replays_and_purges_dead_letters(running: Api) -> None:
    api = running.client
    batch = batch_of("pump-7", n=4)
    publish_to_broker(running, "pump-7", broken(batch), "dl-bad")
    publish_to_broker(running, "pump-8", b"\xff\x00", "dl-binary")
    item = wait_for_dead_letter(api, "dl-bad")
    assert item["reason"].startswith("values.0.0")
    assert (item["replayed_at"], item["replay_count"]) == (None, 0)
    binary = wait_for_dead_letter(api, "dl-binary")

    detail = api.get(f"{API}/dead-letters/{item['id']}").json()
    assert detail["body_encoding"] == "utf-8"
    assert detail["body"].encode() == broken(batch)
    assert detail["routing_key"] == "pump-7"
    detail = api.get(f"{API}/dead-letters/{binary['id']}").json()
    assert (detail["body_encoding"], detail["body"]) == ("base64", "/wA=")
    assert api.get(f"{API}/dead-letters/424242").status_code == 404
    assert api.post(f"{API}/dead-letters/424242/replay").status_code == 404

    # replaying the unfixed body: 422 naming the field, nothing published or marked
    response = api.post(f"{API}/dead-letters/{item['id']}/replay")
    assert response.status_code == 422, response.text
    assert "values.0.0" in response.json()["detail"]
    response = api.post(
        f"{API}/dead-letters/{item['id']}/replay", json={"body": '{"schema": "other/9"}'}
    )
    assert response.status_code == 422 and "schema" in response.json()["detail"]
    assert api.get(f"{API}/dead-letters/{item['id']}").json()["replay_count"] == 0

    # replaying a fixed body: stored through the normal path, and marked
    response = api.post(
        f"{API}/dead-letters/{item['id']}/replay", json={"body": batch.to_wire().decode()}
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["message_id"] == str(batch.message_id)
    assert (accepted["machine_id"], accepted["readings"], accepted["replay_count"]) == (
        "pump-7",
        4,
        1,
    )
    wait_for(lambda: stored_readings(api, "pump-7") == 4, what="4 replayed readings of pump-7")
    detail = api.get(f"{API}/dead-letters/{item['id']}").json()
    assert detail["replayed_at"] is not None and detail["replay_count"] == 1
    pending = api.get(f"{API}/dead-letters", params={"include_replayed": False}).json()
    assert [d["message_id"] for d in pending] == ["dl-binary"]

    # purge
    assert api.post(f"{API}/dead-letters/purge", json={}).status_code == 422
    long_ago = {"older_than": "2000-01-01T00:00:00Z"}
    assert api.post(f"{API}/dead-letters/purge", json=long_ago).json() == {"purged": 0}
    response = api.post(f"{API}/dead-letters/purge", json={"ids": [item["id"]]})
    assert response.json() == {"purged": 1}
    assert api.post(f"{API}/dead-letters/purge", json={"all": True}).json() == {"purged": 1}
    assert api.get(f"{API}/dead-letters").json() == []
    assert stored_readings(api, "pump-7") == 4  # purging dead letters leaves readings alone


# --- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The CLI's data dir, its database migrated (as `mmlw db upgrade` leaves it)."""
    path = (tmp_path / "data").resolve()
    path.mkdir()
    Store.open(f"sqlite:///{path / 'mmlw.db'}").close()
    return path


@pytest.fixture
def cli(data_dir: Path) -> Cli:
    """``mmlw`` in-process; every MMLW_* variable of the caller is hidden."""
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("MMLW_")}
    env.update(
        MMLW_ENVIRONMENT="test",
        MMLW_DATA_DIR=str(data_dir),
        MMLW_BROKER__URL="memory://",
        MMLW_BROKER__NAMESPACE=f"t{uuid.uuid4().hex[:10]}",
        MLFLOW_LOGGING_LEVEL=None,
    )
    runner = CliRunner()

    def run(*args: str, input: str | None = None, **more: str | None) -> Result:
        return runner.invoke(
            main, list(args), input=input, env={**env, **more}, catch_exceptions=True
        )

    return run


@pytest.fixture
def cli_store(data_dir: Path) -> Iterator[Store]:
    """The CLI's own store (MMLW_DATA_DIR/mmlw.db)."""
    store = Store.open(f"sqlite:///{data_dir / 'mmlw.db'}")
    yield store
    store.close()


def test_cli_lists_shows_and_purges(cli: Cli, cli_store: Store) -> None:
    first = add_dead_letter(cli_store, b"{not json", routing_key="pump-9", reason="body: bad")
    second = add_dead_letter(cli_store, b"\xff\x00", reason="body: binary")

    result = cli("dlq", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [int(line.split()[0]) for line in lines] == [second, first]
    assert "body: bad" in lines[1] and "pump-9" in lines[1] and "pending" in lines[1]
    result = cli("dlq", "list", "--limit", "1")
    assert len(result.stdout.splitlines()) == 1

    result = cli("dlq", "show", str(first))
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert (shown["body"], shown["body_encoding"], shown["reason"]) == (
        "{not json",
        "utf-8",
        "body: bad",
    )
    assert json.loads(cli("dlq", "show", str(second)).stdout)["body_encoding"] == "base64"
    result = cli("dlq", "show", "9999")
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: dead letter 9999 not found"

    result = cli("dlq", "purge", "--yes")
    assert result.exit_code != 0 and "exactly one of" in result.stderr
    result = cli("dlq", "purge", "--all", input="n\n")
    assert result.exit_code == 1 and "not confirmed" in result.stderr
    result = cli("dlq", "purge", "--older-than-hours", "1", "--yes")
    assert result.exit_code == 0 and "purged 0 dead letters" in result.stdout
    result = cli("dlq", "purge", "--all", "--yes")
    assert result.exit_code == 0 and "purged 2 dead letters" in result.stdout
    assert cli_store.dead_letters.count() == 0


def test_cli_replay_refuses_the_in_process_broker(cli: Cli, cli_store: Store) -> None:
    dead = add_dead_letter(cli_store, batch_of().to_wire())
    result = cli("dlq", "replay", str(dead))
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "memory://" in result.stderr
    assert cli_store.dead_letters.get(dead).replay_count == 0


@pytest.fixture
def broker_namespace(rabbitmq_url: str) -> Iterator[str]:
    """A namespace of its own on RabbitMQ; its queues and exchanges are deleted after."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    yield namespace
    delete_topology(rabbitmq_url, Topology(namespace))


def test_cli_replay_publishes_to_rabbitmq(
    cli: Cli, cli_store: Store, rabbitmq_url: str, broker_namespace: str, tmp_path: Path
) -> None:
    batch = batch_of("mixer-2", n=5)
    dead = add_dead_letter(cli_store, broken(batch), routing_key="mixer-2")
    broker = {"MMLW_BROKER__URL": rabbitmq_url, "MMLW_BROKER__NAMESPACE": broker_namespace}

    # still invalid: one line naming the field, nothing published, not marked
    result = cli("dlq", "replay", str(dead), **broker)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: values.0.0")
    assert len(result.stderr.strip().splitlines()) == 1
    assert cli_store.dead_letters.get(dead).replay_count == 0
    result = cli("dlq", "replay", "9999", **broker)
    assert result.exit_code == 1 and "dead letter 9999 not found" in result.stderr

    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(batch.to_wire())
    result = cli("dlq", "replay", str(dead), "--body-file", str(fixed), **broker)
    assert result.exit_code == 0, result.output
    assert f"as message {batch.message_id}" in result.stdout
    marked = cli_store.dead_letters.get(dead)
    assert marked.replay_count == 1 and marked.replayed_at is not None

    connection = pika.BlockingConnection(pika.URLParameters(pika_url(rabbitmq_url)))
    try:
        channel = connection.channel()
        ingest = Topology(broker_namespace).ingest_queue_name

        def depth() -> int:
            return int(channel.queue_declare(ingest, passive=True).method.message_count)

        wait_for(lambda: depth() == 1, what="the replayed message on the ingest queue")
        method, properties, body = channel.basic_get(ingest, auto_ack=True)
        assert method is not None and method.routing_key == "mixer-2"
        assert properties.delivery_mode == 2
        assert parse_readings_message(body) == batch
    finally:
        connection.close()
