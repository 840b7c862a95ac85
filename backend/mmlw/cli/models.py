"""Models and the jobs that train them: ``mmlw train``, ``jobs``, ``models``, and
``machines`` (what the models are trained on)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import click

from mmlw.cli.core import (
    main,
    one_line_errors,
    open_registry,
    open_store,
    parse_params,
    settings_of,
    train_dispatcher,
)

__all__ = ["jobs", "machines", "models", "train"]


@main.command()
@click.argument("machine_id")
@click.option(
    "--detector",
    default=None,
    help="catalog name (default: MMLW_MODELS__DEFAULT_DETECTOR, adaptive)",
)
@click.option("--param", "params", multiple=True, help="detector parameter NAME=VALUE (JSON value)")
@click.option("--start", type=click.DateTime(), default=None, help="window start (UTC)")
@click.option("--end", type=click.DateTime(), default=None, help="window end (UTC)")
@click.option("--last-n", type=int, default=None, help="newest N readings of the window")
@click.option("--wait/--no-wait", default=True, show_default=True, help="wait for the job")
@click.option("--inline", is_flag=True, help="train in this process instead of a worker")
@click.pass_context
@one_line_errors
def train(
    ctx: click.Context,
    machine_id: str,
    detector: str | None,
    params: tuple[str, ...],
    start: datetime | None,
    end: datetime | None,
    last_n: int | None,
    wait: bool,
    inline: bool,
) -> None:
    """Train MACHINE_ID's detector on its stored readings and register a model version."""

    from mmlw.schemas.jobs import TrainRequest
    from mmlw.services.jobs import submit_training

    settings = settings_of(ctx)
    parsed = parse_params(params)
    request = TrainRequest(
        machine_id=machine_id,
        detector=detector or settings.models.default_detector,
        params=parsed,
        start=start.replace(tzinfo=UTC) if start else None,
        end=end.replace(tzinfo=UTC) if end else None,
        last_n=last_n,
    )
    store = open_store(settings)
    dispatcher = train_dispatcher(settings, store, inline, "train")
    job = submit_training(request, store=store, dispatcher=dispatcher)
    if not inline:
        click.echo(f"job {job.id} queued")
        if not wait:
            return
        while not store.jobs.get(job.id).state.finished:
            time.sleep(0.5)
    job = store.jobs.get(job.id)
    if job.error:
        raise click.ClickException(f"job {job.id} failed: {job.error}")
    result = job.result or {}
    click.echo(
        f"job {job.id} {job.state.value}: {result.get('model_name')} v{result.get('version')} "
        f"threshold {result.get('threshold', float('nan')):.4g} "
        f"on {result.get('n_readings')} readings"
        + (f", aliases {result['aliases']}" if result.get("aliases") else "")
    )


@main.command()
@click.argument("job_id", required=False)
@click.option("--machine", "machine_id", default=None)
@click.option("--limit", default=20, show_default=True)
@click.pass_context
@one_line_errors
def jobs(ctx: click.Context, job_id: str | None, machine_id: str | None, limit: int) -> None:
    """List jobs (newest first), or show one job whole."""
    store = open_store(settings_of(ctx))
    if job_id:
        click.echo(store.jobs.get(job_id).model_dump_json(indent=2))
        return
    for job in store.jobs.list(machine_id, limit):
        duration = f"{job.duration_s:.1f}s" if job.duration_s is not None else "-"
        click.echo(
            f"{job.id}  {job.kind.value:<6} {job.machine_id:<16} {job.state.value:<10} "
            f"{job.created_at:%Y-%m-%d %H:%M:%S}  {duration:>7}  {job.error or ''}"
        )


@main.command()
@click.argument("machine_id")
@click.pass_context
@one_line_errors
def models(ctx: click.Context, machine_id: str) -> None:
    """List MACHINE_ID's registered model versions with aliases and metrics."""
    from mmlw.registry.sqlite_versions import sqlite_versions

    settings = settings_of(ctx)
    name = f"{settings.models.registered_model_prefix}{machine_id}"
    # the default SQLite store is read directly: importing mlflow costs more than the listing
    versions = sqlite_versions(settings.resolved_tracking_uri, name)
    if versions is None:
        versions = open_registry(settings).versions(machine_id)
    if not versions:
        raise click.ClickException(f"models: no registered model for machine {machine_id!r}")
    for v in versions:
        metrics = ", ".join(f"{k}={v.metrics[k]:.4g}" for k in sorted(v.metrics)[:6])
        click.echo(
            f"{v.model_name} v{v.version:<3} {','.join(v.aliases) or '-':<12} "
            f"{v.detector or '-':<16} "
            f"{v.created_at:%Y-%m-%d %H:%M:%S}  {metrics}"
        )


@main.command()
@click.pass_context
@one_line_errors
def machines(ctx: click.Context) -> None:
    """List machines with reading and score counts."""
    store = open_store(settings_of(ctx))
    for m in store.machines.list():
        click.echo(
            f"{m.id:<16} {m.n_readings:>10} readings {m.n_scored:>10} scored  "
            f"last {m.last_reading_at:%Y-%m-%d %H:%M:%S}"
        )
