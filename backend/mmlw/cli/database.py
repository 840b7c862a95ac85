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
    if revision == "head":
        from mmlw.store.partitions import ensure_partitions

        partitions = ensure_partitions(
            database.engine, ahead_days=settings.retention.partitions_ahead_days
        )
        if partitions:
            click.echo(f"created partitions {', '.join(partitions)}")


@db.command("prune")
@click.pass_context
@one_line_errors
def db_prune(ctx: click.Context) -> None:
    """Roll up the closed hours' raw batches, then delete what is older than
    MMLW_RETENTION__* (readings, scores, resolved alerts, rollups) and create the
    PostgreSQL day partitions ahead, as the worker's daily beat task does."""
    import json

    from mmlw.services.retention import apply_retention
    from mmlw.store import Store

    settings = settings_of(ctx.parent) if ctx.parent else settings_of(ctx)
    with Store.open(settings.resolved_database_url, migrate=False) as store:
        report = apply_retention(store, settings.retention)
    click.echo(json.dumps(report.summary(), indent=2))
