"""deployment identity: a random id, created once per database

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 11:00:00

The id tags the MLflow experiment a deployment uses, so that a deployment refuses to
start on an MLflow store holding another deployment's models. It is written here, in
the migration, so that it exists exactly once whoever migrates and however many
processes start at once. ``had_models`` records whether the database already held alias
moves when it got its id: a deployment older than the identity may adopt the untagged
models under its prefix, a new one may not.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import mmlw.store.tables

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    deployment = op.create_table(
        "deployment",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", mmlw.store.tables.UtcDateTime(timezone=True), nullable=False),
        sa.Column("had_models", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    bind = op.get_bind()
    alias_events = sa.table("alias_events", sa.column("id", sa.BigInteger()))
    had_models = bind.execute(sa.select(alias_events.c.id).limit(1)).first() is not None
    bind.execute(
        deployment.insert().values(
            id=uuid.uuid4().hex, created_at=datetime.now(UTC), had_models=had_models
        )
    )


def downgrade() -> None:
    op.drop_table("deployment")
