"""dead letters: size and SHA-256 of the whole body; bodies kept only in part from now on

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 08:00:00

A dead letter kept its body whatever its size, and listing them loaded every body. New
dead letters keep the first ``MMLW_BROKER__DEAD_LETTER_BODY_KIB`` of their body, with the
size and SHA-256 of the whole. Existing rows keep their whole body; their size and digest
are computed here, one row at a time.
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch_op:
        batch_op.add_column(sa.Column("body_size", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("body_sha256", sa.String(64), nullable=True))
    table = sa.table(
        "dead_letters",
        sa.column("id", sa.BigInteger()),
        sa.column("body", sa.LargeBinary()),
        sa.column("body_size", sa.BigInteger()),
        sa.column("body_sha256", sa.String(64)),
    )
    bind = op.get_bind()
    ids = bind.execute(sa.select(table.c.id).order_by(table.c.id)).scalars().all()
    for row_id in ids:  # one body in memory at a time
        body = bind.execute(sa.select(table.c.body).where(table.c.id == row_id)).scalar_one()
        body = bytes(body or b"")
        bind.execute(
            table.update()
            .where(table.c.id == row_id)
            .values(body_size=len(body), body_sha256=hashlib.sha256(body).hexdigest())
        )


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch_op:
        batch_op.drop_column("body_sha256")
        batch_op.drop_column("body_size")
