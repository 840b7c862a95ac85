"""per-batch tables partitioned by day on PostgreSQL; message ids unique in their own table

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 11:30:00

Retention drops whole day partitions of ``reading_batches`` and ``score_batches``
(:mod:`mmlw.store.partitions`). A partitioned table's unique keys must include its
partition key, so the idempotency key ``message_id`` moves to ``reading_batch_keys``
(both dialects), and ``score_batches.batch_id`` no longer references
``reading_batches`` (scores may also be kept longer than the readings they scored).

PostgreSQL: each table is copied into a partitioned table of the same name (day
partitions from its oldest day, at most 400 days back, to three days ahead; older rows go
to the default partition), ids and their sequence kept. This rewrites the tables: on a
large database it takes as long as copying them. SQLite stays unpartitioned; its
``score_batches`` loses the foreign key to ``reading_batches`` (the table is rebuilt).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import mmlw.store.tables
from mmlw.store.partitions import (
    AHEAD_DAYS,
    BYTEA_COLUMNS,
    create_day_partition,
    default_partition,
)

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

MAX_DAYS_BACK = 400
_FK_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}

# the indexes and unique keys of each table, as PostgreSQL gets them when partitioned
_PARTITIONED_INDEXES = {
    "reading_batches": [
        "CREATE INDEX ix_reading_batches_machine_t ON reading_batches (machine_id, t_start, t_end)",
        "CREATE INDEX ix_reading_batches_message_id ON reading_batches (message_id)",
    ],
    "score_batches": [
        "ALTER TABLE score_batches ADD CONSTRAINT uq_score_batch_model_role "
        "UNIQUE (batch_id, model_name, model_version, role, t_start)",
        "CREATE INDEX ix_score_batches_machine_t ON score_batches (machine_id, t_start)",
        "CREATE INDEX ix_score_batches_machine_role_end ON score_batches "
        "(machine_id, role, t_end, id)",
    ],
}
_PLAIN_INDEXES = {
    "reading_batches": [
        "ALTER TABLE reading_batches ADD CONSTRAINT reading_batches_message_id_key "
        "UNIQUE (message_id)",
        "CREATE INDEX ix_reading_batches_machine_t ON reading_batches (machine_id, t_start, t_end)",
    ],
    "score_batches": [
        "ALTER TABLE score_batches ADD CONSTRAINT uq_score_batch_model_role "
        "UNIQUE (batch_id, model_name, model_version, role)",
        "CREATE INDEX ix_score_batches_machine_t ON score_batches (machine_id, t_start)",
        "CREATE INDEX ix_score_batches_machine_role_end ON score_batches "
        "(machine_id, role, t_end, id)",
        "ALTER TABLE score_batches ADD CONSTRAINT score_batches_batch_id_fkey "
        "FOREIGN KEY (batch_id) REFERENCES reading_batches (id)",
    ],
}


def upgrade() -> None:
    op.create_table(
        "reading_batch_keys",
        sa.Column("message_id", sa.String(36), primary_key=True),
        sa.Column("t_start", mmlw.store.tables.UtcDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_reading_batch_keys_t_start", "reading_batch_keys", ["t_start"])
    op.execute(
        "INSERT INTO reading_batch_keys (message_id, t_start) "
        "SELECT message_id, t_start FROM reading_batches"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE score_batches DROP CONSTRAINT IF EXISTS score_batches_batch_id_fkey"
        )
        for table in ("reading_batches", "score_batches"):
            _rebuild(table, partitioned=True)
        return
    with op.batch_alter_table(
        "score_batches", recreate="always", naming_convention=_FK_NAMES
    ) as batch_op:
        batch_op.drop_constraint("fk_score_batches_batch_id_reading_batches", type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("reading_batches", "score_batches"):
            _rebuild(table, partitioned=False)
    else:
        _drop_orphan_scores()
        with op.batch_alter_table(
            "score_batches", recreate="always", naming_convention=_FK_NAMES
        ) as batch_op:
            batch_op.create_foreign_key(
                "fk_score_batches_batch_id_reading_batches",
                "reading_batches",
                ["batch_id"],
                ["id"],
            )
    op.drop_index("ix_reading_batch_keys_t_start", table_name="reading_batch_keys")
    op.drop_table("reading_batch_keys")


def _drop_orphan_scores() -> None:
    """Scores whose readings were pruned: the foreign key of the old schema refuses them."""
    op.execute(
        "DELETE FROM score_batches WHERE NOT EXISTS "
        "(SELECT 1 FROM reading_batches r WHERE r.id = score_batches.batch_id)"
    )


def _rebuild(table: str, *, partitioned: bool) -> None:
    """Copy ``table`` into a new table of the same name, partitioned by day of ``t_start``
    or plain (downgrade), keeping its rows, ids and id sequence."""
    bind = op.get_bind()
    old = f"{table}_0012_old"
    sequence = f"{table}_id_seq"
    op.execute(f"ALTER TABLE {table} RENAME TO {old}")
    layout = " PARTITION BY RANGE (t_start)" if partitioned else ""
    op.execute(f"CREATE TABLE {table} (LIKE {old} INCLUDING DEFAULTS INCLUDING STORAGE){layout}")
    if partitioned:
        op.execute(f"CREATE TABLE {default_partition(table)} PARTITION OF {table} DEFAULT")
        for column in BYTEA_COLUMNS[table]:
            op.execute(
                f"ALTER TABLE {default_partition(table)} "
                f'ALTER COLUMN "{column}" SET STORAGE EXTERNAL'
            )
        oldest = bind.scalar(sa.text(f"SELECT min(t_start) FROM {old}"))
        today = datetime.now(UTC).date()
        first = today if oldest is None else min(oldest.astimezone(UTC).date(), today)
        day = max(first, today - timedelta(days=MAX_DAYS_BACK))
        while day <= today + timedelta(days=AHEAD_DAYS):
            create_day_partition(bind, table, day)
            day += timedelta(days=1)
    op.execute(f"INSERT INTO {table} SELECT * FROM {old}")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
    op.execute(f"DROP TABLE {old}")
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY {table}.id")
    key = "id, t_start" if partitioned else "id"
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({key})")
    op.execute(
        f"ALTER TABLE {table} ADD CONSTRAINT {table}_machine_id_fkey "
        "FOREIGN KEY (machine_id) REFERENCES machines (id)"
    )
    if not partitioned and table == "score_batches":
        _drop_orphan_scores()
    for statement in (_PARTITIONED_INDEXES if partitioned else _PLAIN_INDEXES)[table]:
        op.execute(statement)
