"""compact stored batches: contributions only for the rows that matter

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 16:40:00

``score_batches.contribution_rows`` holds the int32 row numbers whose contributions
``contributions`` holds (:mod:`mmlw.store.compact`): the readings above the threshold and
the worst of the batch. NULL, as on every batch stored before, means every row. Values
in the scaled int32 form need no column: their length tells the form. On PostgreSQL the
column goes to every day partition with the parent.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("score_batches", sa.Column("contribution_rows", sa.LargeBinary(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # packed arrays are not pglz'ed (0007)
        op.execute(
            'ALTER TABLE score_batches ALTER COLUMN "contribution_rows" SET STORAGE EXTERNAL'
        )


def downgrade() -> None:
    op.drop_column("score_batches", "contribution_rows")
