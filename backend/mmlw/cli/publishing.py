"""``mmlw simulate`` and ``mmlw publish``: readings into the broker, as machines send them.

Both can keep what the broker cannot take in a local spool and send it later.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from mmlw.cli.core import (
    check_broker_now,
    main,
    one_line_errors,
    require_broker,
    settings_of,
)

__all__ = ["publish", "simulate"]

spool_option = click.option(
    "--spool",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="keep batches the broker cannot take in this local file and send them later "
    "(default: MMLW_BROKER__SPOOL_PATH; none: fail)",
)


@main.command()
@click.option("--machines", default=3, show_default=True, help="synthetic machines")
@click.option("--speedup", default=1.0, show_default=True, help="simulated seconds per second")
@click.option("--batch-size", default=10, show_default=True)
@click.option("--duration", type=float, default=None, help="stop after N wall seconds")
@click.option("--max-readings", type=int, default=None, help="stop after N readings in all")
@click.option("--warmup", default=600, show_default=True, help="fault-free readings first")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--replay",
    "replay_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="replay a CSV (SKAB layout) as a live machine instead; repeatable",
)
@spool_option
@click.pass_context
@one_line_errors
def simulate(
    ctx: click.Context,
    machines: int,
    speedup: float,
    batch_size: int,
    duration: float | None,
    max_readings: int | None,
    warmup: int,
    seed: int,
    replay_files: tuple[Path, ...],
    spool: Path | None,
) -> None:
    """Publish readings of simulated machines (synthetic with faults, or CSV replays)."""

    from mmlw.messaging.sink import sink_from_settings
    from mmlw.workers.simulator import CsvReplay, Source, run_simulation, synthetic_fleet

    settings = settings_of(ctx)
    require_broker(settings, "simulate")
    sources: list[Source]
    if replay_files:
        now = datetime.now(UTC).replace(microsecond=0)
        sources = [CsvReplay(path, start=now) for path in replay_files]
    else:
        sources = list(synthetic_fleet(machines, seed=seed, warmup=warmup))
    check_broker_now(settings, spool=spool or settings.broker.spool_path)  # after the input
    sink = sink_from_settings(settings.broker, spool_path=spool or settings.broker.spool_path)

    def progress(stats: Any) -> None:
        click.echo(f"{stats.elapsed_s:7.1f}s  {stats.readings} readings in {stats.batches} batches")

    try:
        stats = run_simulation(
            sources,
            sink,
            batch_size=batch_size,
            speedup=speedup,
            duration_s=duration,
            max_readings=max_readings,
            on_progress=progress,
        )
    except KeyboardInterrupt:
        return
    finally:
        sink.close()
    click.echo(
        f"published {stats.readings} readings: {json.dumps(stats.per_machine)}"
        + _spooled_note(sink)
    )


def _spooled_note(sink: object) -> str:
    """What a publisher with a local spool still holds (the next run sends it first)."""
    waiting = int(getattr(sink, "spooled", 0))
    return f"; {waiting} batch(es) kept in the local spool for later" if waiting else ""


@main.command()
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--machine", "machine_id", default=None, help="default: derived from the file name")
@click.option("--batch-size", default=500, show_default=True)
@click.option("--sep", default=None, help="column separator (default: sniff ; or ,)")
@click.option("--time-column", default="datetime", show_default=True)
@spool_option
@click.pass_context
@one_line_errors
def publish(
    ctx: click.Context,
    csv_file: Path,
    machine_id: str | None,
    batch_size: int,
    sep: str | None,
    time_column: str,
    spool: Path | None,
) -> None:
    """Publish a CSV of readings (datetime column + sensors) to the broker, batched."""
    from mmlw.messaging.sink import sink_from_settings
    from mmlw.workers.simulator import CsvReplay, run_simulation

    settings = settings_of(ctx)
    require_broker(settings, "publish")
    source = CsvReplay(csv_file, machine_id, sep=sep, time_column=time_column)
    check_broker_now(settings, spool=spool or settings.broker.spool_path)  # after the input
    sink = sink_from_settings(settings.broker, spool_path=spool or settings.broker.spool_path)
    try:
        stats = run_simulation([source], sink, batch_size=batch_size, speedup=0)
    finally:
        sink.close()
    click.echo(
        f"published {stats.readings} readings of {source.machine_id} in {stats.batches} batches"
        + _spooled_note(sink)
    )
