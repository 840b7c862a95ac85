"""``mmlw promote | rollback | gate | aliases``: the model lifecycle from the shell."""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import asdict
from pathlib import Path

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
from mmlw.errors import NotFound

__all__ = ["aliases", "compare", "gate", "promote_command", "rollback_command"]


@main.command("promote")
@click.argument("machine_id")
@click.option("--version", type=int, default=None, help="default: the challenger")
@click.option("--force", is_flag=True, help="skip the promotion gate")
@click.option("--by", default=getpass.getuser, show_default="current user")
@click.option("--reason", default="promoted", show_default=True)
@click.pass_context
@one_line_errors
def promote_command(
    ctx: click.Context, machine_id: str, version: int | None, force: bool, by: str, reason: str
) -> None:
    """Make the challenger (or --version) champion, if it passes the gate."""
    from mmlw.services.lifecycle import promote

    settings = settings_of(ctx)
    with open_store(settings) as store:
        event, report = promote(
            machine_id,
            store=store,
            registry=open_registry(settings),
            settings=settings.models.promotion,
            actor=by,
            reason=reason,
            version=version,
            gated=not force,
        )
    click.echo(f"{machine_id}: champion v{event.from_version} -> v{event.to_version}")
    if report is not None:
        click.echo(report.reason)


@main.command("rollback")
@click.argument("machine_id")
@click.argument("version", type=int)
@click.option("--by", default=getpass.getuser, show_default="current user")
@click.option("--reason", default="rolled back", show_default=True)
@click.pass_context
@one_line_errors
def rollback_command(
    ctx: click.Context, machine_id: str, version: int, by: str, reason: str
) -> None:
    """Make an earlier VERSION champion again, at once."""
    from mmlw.services.lifecycle import rollback

    settings = settings_of(ctx)
    with open_store(settings) as store:
        event = rollback(
            machine_id, version, store=store, registry=open_registry(settings), actor=by,
            reason=reason,
        )  # fmt: skip
    click.echo(f"{machine_id}: champion v{event.from_version} -> v{event.to_version}")


@main.command("gate")
@click.argument("machine_id")
@click.option("--version", type=int, default=None, help="default: the challenger")
@click.pass_context
@one_line_errors
def gate(ctx: click.Context, machine_id: str, version: int | None) -> None:
    """Compare the challenger (or --version) with the champion by the promotion gate."""
    from mmlw.registry.base import CHALLENGER
    from mmlw.services.lifecycle import gate_report

    settings = settings_of(ctx)
    registry = open_registry(settings)
    if version is None:
        version = registry.alias_version(machine_id, CHALLENGER)
        if version is None:
            raise NotFound(f"machine {machine_id!r} has no challenger")
    with open_store(settings) as store:
        report = gate_report(
            machine_id, version, store=store, registry=registry,
            settings=settings.models.promotion,
        )  # fmt: skip
    click.echo(report.reason)
    click.echo(json.dumps(asdict(report), indent=2, default=str))


@main.command("aliases")
@click.argument("machine_id")
@click.pass_context
@one_line_errors
def aliases(ctx: click.Context, machine_id: str) -> None:
    """The alias history of MACHINE_ID: every move, who, when, why."""
    with open_store(settings_of(ctx)) as store:
        store.machines.get(machine_id)
        events = store.alias_history.list(machine_id)
    for e in events:
        before = f"v{e.from_version}" if e.from_version is not None else "-"
        after = f"v{e.to_version}" if e.to_version is not None else "-"
        click.echo(
            f"{e.at:%Y-%m-%d %H:%M:%S}  {e.alias:<10} {before:>4} -> {after:<4} "
            f"{e.actor:<12} {e.reason}"
        )


@main.command("compare")
@click.argument("machine_id")
@click.option(
    "--detector",
    "specs",
    multiple=True,
    required=True,
    help="a config: NAME or NAME:param=value,param=value (give two or more)",
)
@click.option("--last-n", type=int, default=None, help="newest N readings (one window for all)")
@click.option("--inline", is_flag=True, help="train here, one after the other, not on workers")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_context
@one_line_errors
def compare(
    ctx: click.Context,
    machine_id: str,
    specs: tuple[str, ...],
    last_n: int | None,
    inline: bool,
    plot: Path | None,
) -> None:
    """Train several detector configs on the same window (parallel jobs on the workers)
    and show fit time, score time and metrics side by side; --plot writes a chart."""
    from mmlw.schemas.jobs import TrainOptions
    from mmlw.services.comparison import (
        CompareRequest,
        DetectorConfig,
        comparison_figure,
        comparison_rows,
        start_comparison,
    )

    configs = []
    for spec in specs:
        name, _, raw = spec.partition(":")
        params = parse_params([p for p in raw.split(",") if p]) if raw else {}
        configs.append(DetectorConfig(detector=name.strip(), params=params))
    request = CompareRequest(configs=configs, window=TrainOptions(last_n=last_n))
    settings = settings_of(ctx)
    with open_store(settings) as store:
        dispatcher = train_dispatcher(settings, store, inline, "compare")
        group, jobs = start_comparison(machine_id, request, store=store, dispatcher=dispatcher)
        while not all(store.jobs.get(j.id).state.finished for j in jobs):
            time.sleep(0.5)
        rows = comparison_rows(group, store)
    click.echo(f"comparison {group} on {machine_id}")
    click.echo(
        f"{'detector':<20} {'version':>7} {'fit s':>8} {'score s':>8} {'threshold':>10} "
        f"{'flag rate':>9}  {'train F1':>8}"
    )
    for r in rows:
        if r.error:
            click.echo(f"{r.detector:<20} failed: {r.error}")
            continue
        f1 = r.metrics.get("train_f1")
        click.echo(
            f"{r.detector:<20} {'v' + str(r.version):>7} {r.fit_time_s or 0:>8.3f} "
            f"{r.score_time_s or 0:>8.3f} {r.threshold or 0:>10.4g} "
            f"{(r.train_flag_rate or 0):>9.2%}  {'-' if f1 is None else f'{f1:.3f}':>8}"
        )
    if plot is not None:
        comparison_figure(rows).write_html(plot, include_plotlyjs="cdn")
        click.echo(f"chart: {plot}")
