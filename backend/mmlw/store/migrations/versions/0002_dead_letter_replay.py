"""dead letters: replayed_at and replay_count

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 00:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import mmlw.store.tables

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch_op:
        batch_op.add_column(
            sa.Column("replayed_at", mmlw.store.tables.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("replay_count", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch_op:
        batch_op.drop_column("replay_count")
        batch_op.drop_column("replayed_at")
