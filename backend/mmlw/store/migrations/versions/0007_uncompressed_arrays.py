"""store packed arrays uncompressed (PostgreSQL)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 21:50:00

The batch columns hold packed float64/int64 arrays of 8-64 KB. PostgreSQL's default
storage (EXTENDED) runs pglz over every such value before moving it out of line; on
sensor floats that saves almost nothing (a table of 1000 batches: 141.0 MB compressed,
141.6 MB not) and costs the server CPU on every insert (0.99 -> 0.69 ms per batch of
1000 readings with its contributions, measured on this machine). EXTERNAL keeps the
out-of-line storage and skips the compression. SQLite has no such setting.
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = {
    "reading_batches": ("timestamps_us", "values", "labels"),
    "score_batches": ("scores", "contributions"),
}


def _set_storage(storage: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in _COLUMNS.items():
        for column in columns:
            op.execute(f'ALTER TABLE {table} ALTER COLUMN "{column}" SET STORAGE {storage}')


def upgrade() -> None:
    _set_storage("EXTERNAL")


def downgrade() -> None:
    _set_storage("EXTENDED")
