"""``mmlw db``: the database schema (Alembic migrations)."""

from __future__ import annotations

import click

from mmlw.cli.core import (
    main,
    one_line_errors,
    settings_of,
)

__all__ = ["db"]


@main.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
@one_line_errors
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Create or migrate the schema of MMLW_DATABASE_URL (a PostgreSQL database that does
    not exist yet is created first)."""
    from mmlw.store import Database
    from mmlw.store.provisioning import ensure_database

    settings = settings_of(ctx.parent) if ctx.parent else settings_of(ctx)
    settings.ensure_data_dir()
    created = ensure_database(settings.resolved_database_url)
    if created is not None:
        click.echo(f"created database {created}")
    database = Database(settings.resolved_database_url)
    database.migrate(revision)
    click.echo(f"database {database.engine.url.render_as_string(hide_password=True)} at {revision}")
