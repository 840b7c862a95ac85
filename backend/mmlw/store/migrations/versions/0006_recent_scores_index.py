"""index for a machine's newest scores

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:10:00

``ScoresRepository.recent`` (the alert rules, after every predict task) and the API's
newest scores read a machine's champion batches newest first by ``t_end``; with this
index that is one short index scan instead of a sort of all of the machine's batches.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_score_batches_machine_role_end",
        "score_batches",
        ["machine_id", "role", "t_end", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_score_batches_machine_role_end", table_name="score_batches")
