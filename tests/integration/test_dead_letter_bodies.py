"""Dead-letter bodies are capped: the store keeps the first ``dead_letter_body_kib`` of a
body with the size and SHA-256 of the whole, the API's list loads no bodies, and a dead letter
whose body was cut is not replayed as it was (SQLite and PostgreSQL; the API and the
ingest consumer on the in-process ``memory://`` broker)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from kombu import Connection, Producer

from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.settings import Settings
from mmlw.store import Database, Store
from mmlw.store.dead_letters import PREVIEW_BYTES
from mmlw.workers.context import WorkerContext
from mmlw.workers.simulator import SyntheticMachine
from tests.integration.pipeline import api_with_ingest
from tests.support.wait import wait_for

API = "/api/v1"
LIMIT = 1024
START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@pytest.fixture
def capped(database_url: str) -> Iterator[Store]:
    store = Store.open(database_url, dead_letter_body_limit=LIMIT)
    yield store
    store.close()


def test_a_long_body_keeps_its_beginning_size_and_digest(capped: Store) -> None:
    body = json.dumps({"values": [[float(i)] * 8 for i in range(500)]}).encode()
    assert len(body) > 10 * LIMIT
    long_id = capped.dead_letters.add(source="amqp", reason="too long", body=body)
    short_id = capped.dead_letters.add(source="amqp", reason="short", body=b"{not json")

    kept = capped.dead_letters.get(long_id)
    assert kept.body == body[:LIMIT]
    assert (kept.body_size, kept.body_kept, kept.body_sha256) == (len(body), LIMIT, digest(body))
    assert kept.truncated
    assert kept.decoded_body() == (body[:LIMIT].decode(), "utf-8")
    short = capped.dead_letters.get(short_id)
    assert (short.body, short.body_size, short.body_kept) == (b"{not json", 9, 9)
    assert short.body_sha256 == digest(b"{not json") and not short.truncated

    assert [d.body for d in capped.dead_letters.list()] == [b"{not json", body[:LIMIT]]
    listed = {d.id: d for d in capped.dead_letters.list(bodies=False)}
    assert listed[long_id].body == body[:PREVIEW_BYTES]  # a preview, not the body
    assert (listed[long_id].body_size, listed[long_id].body_kept) == (len(body), LIMIT)
    assert listed[long_id].body_sha256 == digest(body) and listed[long_id].truncated
    assert listed[short_id].body == b"{not json" and not listed[short_id].truncated


def test_the_replay_service_refuses_a_cut_body_unless_given_a_whole_one(capped: Store) -> None:
    from mmlw.errors import ConflictError
    from mmlw.services.dead_letters import replay

    class Sink:
        def __init__(self) -> None:
            self.published: list[Any] = []

        def publish(self, batch: Any) -> None:
            self.published.append(batch)

    stamps = [datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC).isoformat() for i in range(40)]
    batch = {
        "schema": "mmlw.readings/1",
        "machine_id": "m-1",
        "columns": ["a"],
        "timestamps": stamps,
        "values": [[1.0]] * 40,
    }
    body = json.dumps(batch).encode()
    assert len(body) > LIMIT
    cut = capped.dead_letters.add(source="amqp", reason="test", body=body)
    sink = Sink()
    with pytest.raises(ConflictError, match=f"only the first {LIMIT} of its {len(body)} bytes"):
        replay(cut, store=capped, publisher=sink)  # type: ignore[arg-type]
    assert sink.published == [] and capped.dead_letters.get(cut).replayed_at is None
    replay(cut, store=capped, publisher=sink, body_override=body)  # type: ignore[arg-type]
    assert len(sink.published) == 1 and capped.dead_letters.get(cut).replayed_at is not None


def test_a_body_cut_inside_a_character_is_still_shown_as_text(capped: Store) -> None:
    body = "é".encode() * LIMIT  # 2 bytes each: the limit falls between characters...
    shifted = b"x" + body  # ...and here inside one
    kept = capped.dead_letters.get(capped.dead_letters.add(source="amqp", reason="r", body=shifted))
    text, encoding = kept.decoded_body()
    assert encoding == "utf-8"
    assert text == "x" + "é" * ((LIMIT - 1) // 2)
    binary = capped.dead_letters.get(
        capped.dead_letters.add(source="amqp", reason="r", body=b"\xff" * 2 * LIMIT)
    )
    assert binary.decoded_body()[1] == "base64"


def test_a_list_without_bodies_does_not_select_them(capped: Store) -> None:
    for _ in range(3):
        capped.dead_letters.add(source="amqp", reason="r", body=b"z" * (4 * LIMIT))
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = capped.database.engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        rows = capped.dead_letters.list(bodies=False)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert [len(d.body) for d in rows] == [PREVIEW_BYTES] * 3
    (select,) = [s for s in statements if "FROM dead_letters" in s]
    columns = select.split("FROM dead_letters")[0]
    assert "substr(dead_letters.body" in columns and "length(dead_letters.body)" in columns
    whole = columns.replace("substr(dead_letters.body", "").replace("length(dead_letters.body)", "")
    assert not re.search(r"dead_letters\.body\b", whole), select


def test_the_migration_gives_existing_rows_their_size_and_digest(
    empty_database_url: str,
) -> None:
    database_url = empty_database_url
    database = Database(database_url)
    try:
        database.migrate("0009")
        with database.session() as session:
            session.execute(
                sa.text(
                    "INSERT INTO dead_letters (received_at, source, reason, body, headers, "
                    "replay_count) VALUES (:t, 'amqp', 'old', :b, '{}', 0)"
                ),
                {"t": START, "b": b"x" * 5000},
            )
        database.migrate()
    finally:
        database.dispose()
    store = Store.open(database_url, dead_letter_body_limit=LIMIT)
    try:
        (old,) = store.dead_letters.list()
        assert (old.body_size, old.body_kept, old.body_sha256) == (5000, 5000, digest(b"x" * 5000))
        assert not old.truncated  # kept whole before the cap: still replayable
        assert store.dead_letters.get(old.id).body == b"x" * 5000
    finally:
        store.close()


# --- the API and the ingest consumer --------------------------------------------------------


@dataclass
class Running:
    client: TestClient
    context: WorkerContext


@pytest.fixture
def running(make_settings: Callable[..., Settings], registry: MlflowRegistry) -> Iterator[Running]:
    settings = make_settings()
    broker = settings.broker.model_copy(update={"dead_letter_body_kib": LIMIT // 1024})
    with api_with_ingest(settings.model_copy(update={"broker": broker})) as (client, context):
        yield Running(client, context)


def test_the_consumer_keeps_the_beginning_and_replay_refuses_the_cut_body(
    running: Running,
) -> None:
    machine = SyntheticMachine("pump-3", seed=2, n_sensors=3, start=START, warmup=100_000)
    batch = machine.read(60).to_batch()
    raw = json.loads(batch.to_wire())
    raw["values"][0][0] = "oops"  # breaks the contract
    body = json.dumps(raw).encode()
    assert len(body) > LIMIT
    topology = running.context.topology
    with Connection(running.context.settings.broker.url) as connection:
        channel = connection.channel()
        topology.declare(channel)
        Producer(channel, exchange=topology.readings_exchange()).publish(
            body, routing_key="pump-3", content_type="application/json", message_id="dl-long"
        )
    api = running.client

    def listed() -> dict[str, Any] | None:
        items = api.get(f"{API}/dead-letters").json()
        return next((d for d in items if d["message_id"] == "dl-long"), None)

    item = wait_for(listed, what="the dead letter")
    assert item["reason"].startswith("values.0.0")
    assert (item["body_bytes"], item["body_sha256"], item["body_truncated"]) == (
        len(body),
        digest(body),
        True,
    )
    assert item["body_preview"] == body[:PREVIEW_BYTES].decode()
    detail = api.get(f"{API}/dead-letters/{item['id']}").json()
    assert detail["body"] == body[:LIMIT].decode() and detail["body_encoding"] == "utf-8"
    assert (detail["body_bytes"], detail["body_kept_bytes"]) == (len(body), LIMIT)
    assert detail["body_truncated"] and detail["body_sha256"] == digest(body)

    response = api.post(f"{API}/dead-letters/{item['id']}/replay")
    assert response.status_code == 409, response.text
    assert "incomplete" in response.json()["detail"]
    assert api.get(f"{API}/dead-letters/{item['id']}").json()["replay_count"] == 0
    fixed = {"body": batch.to_wire().decode()}  # a whole, fixed body is replayed
    response = api.post(f"{API}/dead-letters/{item['id']}/replay", json=fixed)
    assert response.status_code == 202, response.text
    assert response.json()["replay_count"] == 1
