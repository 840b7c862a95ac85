"""rollups: per-minute and per-hour aggregates of readings and scores, kept past retention

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 13:30:00

``reading_rollups`` (machine, sensor, period, bucket: count, sum, min, max of the
readings) and ``score_rollups`` (machine, role, period, bucket: count, flagged count,
min and max score with their times, the threshold and model version of the maximum)
answer long time ranges once the raw batches are pruned (:mod:`mmlw.store.rollups`).

``reading_batches.rolled_up`` and ``score_batches.rolled_up`` say which batches the
rollups hold already: a batch is added to them once, in the transaction that sets its
flag, and retention keeps a batch until it is rolled up. Existing batches start not
rolled up (the first rollup run adds them). Partial indexes over the batches not rolled
up yet (a small set: what arrived since the last run) find them without scanning; on
PostgreSQL the column and the indexes go to every day partition, existing and future.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mmlw.store.tables

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# (index, table, columns) over the batches not rolled up yet
_UNROLLED_INDEXES = (
    ("ix_reading_batches_unrolled_id", "reading_batches", ["id"]),
    ("ix_reading_batches_unrolled_machine_t", "reading_batches", ["machine_id", "t_start"]),
    ("ix_score_batches_unrolled_id", "score_batches", ["id"]),
    ("ix_score_batches_unrolled_batch", "score_batches", ["batch_id"]),
    ("ix_score_batches_unrolled_machine_t", "score_batches", ["machine_id", "role", "t_start"]),
)


def upgrade() -> None:
    for table in ("reading_batches", "score_batches"):
        op.add_column(
            table,
            sa.Column("rolled_up", sa.Boolean(), nullable=False, server_default=sa.false()),
        )
    not_rolled_up = sa.text("NOT rolled_up")
    for name, table, columns in _UNROLLED_INDEXES:
        op.create_index(
            name, table, columns, postgresql_where=not_rolled_up, sqlite_where=not_rolled_up
        )
    op.create_table(
        "reading_rollups",
        sa.Column("machine_id", sa.String(64), nullable=False),
        sa.Column("sensor", sa.String(128), nullable=False),
        sa.Column("period_s", sa.Integer(), nullable=False),
        sa.Column("bucket", mmlw.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("minimum", sa.Float(), nullable=False),
        sa.Column("maximum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("machine_id", "period_s", "bucket", "sensor"),
    )
    op.create_index("ix_reading_rollups_period_bucket", "reading_rollups", ["period_s", "bucket"])
    op.create_table(
        "score_rollups",
        sa.Column("machine_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("period_s", sa.Integer(), nullable=False),
        sa.Column("bucket", mmlw.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("n_flagged", sa.BigInteger(), nullable=False),
        sa.Column("score_min", sa.Float(), nullable=False),
        sa.Column("min_at", mmlw.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("score_max", sa.Float(), nullable=False),
        sa.Column("max_at", mmlw.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("machine_id", "role", "period_s", "bucket"),
    )
    op.create_index("ix_score_rollups_period_bucket", "score_rollups", ["period_s", "bucket"])


def downgrade() -> None:
    op.drop_index("ix_score_rollups_period_bucket", table_name="score_rollups")
    op.drop_table("score_rollups")
    op.drop_index("ix_reading_rollups_period_bucket", table_name="reading_rollups")
    op.drop_table("reading_rollups")
    for name, table, _ in _UNROLLED_INDEXES:
        op.drop_index(name, table_name=table)
    for table in ("reading_batches", "score_batches"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("rolled_up")
