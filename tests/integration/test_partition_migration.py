"""Migration 0012 on a database holding data, up and down: rows, ids and the id sequence
are kept; PostgreSQL's batch tables become partitioned by day (and plain again)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from mmlw.alembic_lock import ALEMBIC_LOCK
from mmlw.schemas import ReadingsBatch
from mmlw.store import Database
from mmlw.store.database import MIGRATIONS_DIR
from mmlw.store.packing import pack
from mmlw.store.partitions import is_partitioned, partition_name
from mmlw.store.readings import ReadingsRepository

BEFORE = "0011"  # the revision 0012 follows
NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=40)


def downgrade(database: Database, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        with ALEMBIC_LOCK:  # Alembic's context is one per process
            command.downgrade(config, revision)


def fill(database: Database) -> None:
    """Two batches (40 days old, and new) with one score each, as the old schema holds them."""
    meta = sa.MetaData()
    meta.reflect(database.engine, only=["machines", "reading_batches", "score_batches"])
    machines, readings, scores = (
        meta.tables[n] for n in ("machines", "reading_batches", "score_batches")
    )
    naive = database.dialect == "sqlite"

    def at(t: datetime) -> datetime:
        return t.replace(tzinfo=None) if naive else t

    with database.engine.begin() as connection:
        connection.execute(
            machines.insert().values(
                id="m1",
                columns=["a"],
                first_seen=at(OLD),
                last_seen=at(NOW),
                n_readings=2,
                n_scored=2,
            )
        )
        for batch_id, t in ((1, OLD), (2, NOW)):
            connection.execute(
                readings.insert().values(
                    id=batch_id,
                    machine_id="m1",
                    message_id=f"00000000-0000-4000-8000-00000000000{batch_id}",
                    received_at=at(t),
                    t_start=at(t),
                    t_end=at(t),
                    n=1,
                    columns=["a"],
                    timestamps_us=pack(np.array([int(t.timestamp() * 1e6)]), "i8"),
                    values=pack(np.array([1.0]), "f8"),
                )
            )
            connection.execute(
                scores.insert().values(
                    batch_id=batch_id,
                    machine_id="m1",
                    model_name="m",
                    model_version=1,
                    role="champion",
                    threshold=0.5,
                    scored_at=at(t),
                    t_start=at(t),
                    t_end=at(t),
                    n=1,
                    n_flagged=0,
                    columns=["a"],
                    scores=pack(np.array([0.1]), "f8"),
                    contributions=pack(np.zeros((1, 1)), "f4"),
                )
            )
        if not naive:  # ids given explicitly: move the sequence on as inserts would have
            connection.execute(sa.text("SELECT setval('reading_batches_id_seq', 2)"))


def counts(database: Database) -> tuple[int, int]:
    with database.engine.connect() as connection:
        return (
            int(connection.scalar(sa.text("SELECT count(*) FROM reading_batches")) or 0),
            int(connection.scalar(sa.text("SELECT count(*) FROM score_batches")) or 0),
        )


def partitioned(database: Database) -> bool:
    with database.engine.connect() as connection:
        return is_partitioned(connection, "reading_batches") and is_partitioned(
            connection, "score_batches"
        )


def test_0012_up_and_down_with_data(empty_database_url: str) -> None:
    database = Database(empty_database_url)
    postgres = database.dialect == "postgresql"
    try:
        database.migrate(BEFORE)
        fill(database)
        database.migrate("0012")
        assert counts(database) == (2, 2)
        assert partitioned(database) == postgres
        with database.engine.connect() as connection:
            keys = connection.scalar(sa.text("SELECT count(*) FROM reading_batch_keys"))
            assert keys == 2
            if postgres:  # the old batch sits in its own day partition
                name = partition_name("reading_batches", OLD.date())
                assert connection.scalar(sa.text(f"SELECT count(*) FROM {name}")) == 1
        database.migrate("head")  # the code's repository needs the newest schema
        readings = ReadingsRepository(database)
        old = readings.get(1)
        again = ReadingsBatch.of_rows("m1", ["a"], [OLD], [[1.0]]).model_copy(
            update={"message_id": old.to_batch().message_id}
        )
        assert not readings.add(again).created  # its message id came along
        fresh = readings.add(ReadingsBatch.of_rows("m1", ["a"], [NOW], [[2.0]]))
        assert fresh.created and fresh.batch_id == 3  # the id sequence came along
        downgrade(database, BEFORE)
        assert counts(database) == (3, 2)
        assert not partitioned(database)
        with database.engine.connect() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            assert "reading_batch_keys" not in tables
        database.migrate("0012")  # and up again
        assert counts(database) == (3, 2) and partitioned(database) == postgres
    finally:
        database.dispose()
