"""per-machine streaming state (carry and cursor of each machine's scorer)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 05:00:00

Detectors that look across rows (trailing windows, online learning, EWMA) carry state
from one batch of a machine's readings to the next. The state is checkpointed here, in
the same transaction as the scores it produced, so a restarted or failed-over worker
resumes from it and no batch is streamed twice.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mmlw.store.tables

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_states",
        sa.Column("machine_id", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("cursor_batch_id", sa.BigInteger(), nullable=False),
        sa.Column("n_rows", sa.BigInteger(), nullable=False),
        sa.Column("carry", sa.LargeBinary(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", mmlw.store.tables.UtcDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stream_states")
