"""index for a machine's batches in stored order

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 23:15:00

A machine's stream reads its batches after its checkpoint in id order (the order ingest
stored them): ``machine_id = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?``, for every
machine of a scorer's round in one statement. Without this index PostgreSQL had to pick
between the id range (all machines' batches in it) and the machine's (all of its
history, then a sort); with it, each machine's pending batches are one short index scan
in order, however long its history. On PostgreSQL the index goes to every partition.
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_reading_batches_machine_id", "reading_batches", ["machine_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_reading_batches_machine_id", table_name="reading_batches")
