"""``mmlw_batches_dead_lettered_total`` counts every dead letter ever recorded: purges
leave it, and migration 0009 starts it at the dead letters stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from mmlw.api.app import create_app
from mmlw.settings import Settings
from mmlw.store import Database, Store
from tests.integration.test_metrics import samples


def test_a_purge_leaves_the_dead_letter_total(
    sqlite_store: Store, make_settings: Callable[..., Settings]
) -> None:
    store = sqlite_store
    for n in range(3):
        store.dead_letters.add(source="amqp", reason=f"bad {n}", body=b"{")
    settings = make_settings(database_url=str(store.database.url))
    with TestClient(create_app(settings, store=store)) as client:
        assert samples(client.get("/metrics").text)[("mmlw_batches_dead_lettered_total", ())] == 3
        assert store.dead_letters.purge(everything=True) == 3
        store.dead_letters.add(source="task", reason="bad 3", body=b"[")
        found = samples(client.get("/metrics").text)
    assert found[("mmlw_batches_dead_lettered_total", ())] == 4
    assert store.dead_letters.count() == 1 and store.dead_letters.ever_recorded() == 4


def test_the_migration_starts_the_total_at_the_dead_letters_stored(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        database.migrate("0008")
        with database.session() as session:
            session.execute(
                sa.text(
                    "INSERT INTO dead_letters (received_at, source, reason, body, headers, "
                    "replay_count) VALUES (:t, 'amqp', 'old', :b, '{}', 0)"
                ),
                {"t": datetime(2026, 11, 1, tzinfo=UTC), "b": b"old"},
            )
        database.migrate()
    finally:
        database.dispose()
    with Store.open(f"sqlite:///{tmp_path / 'old.db'}") as store:
        assert store.dead_letters.ever_recorded() == 1
        store.dead_letters.add(source="amqp", reason="new", body=b"new")
        assert store.dead_letters.ever_recorded() == 2
