"""event counts that only rise (dead letters ever recorded)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 06:00:00

``mmlw_batches_dead_lettered_total`` counted the rows of ``dead_letters``, so a purge
lowered a Prometheus counter. The count now lives in ``event_counts`` and is incremented
in the transaction that records a dead letter; a purge leaves it. It starts at the number
of dead letters stored (earlier purged ones are unknown).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_counts",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("count", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.execute(
        "INSERT INTO event_counts (name, count) SELECT 'dead_letters', COUNT(*) FROM dead_letters"
    )


def downgrade() -> None:
    op.drop_table("event_counts")
