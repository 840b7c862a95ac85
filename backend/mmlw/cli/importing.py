"""``mmlw import``: bulk-load a machine's history from CSV, Parquet or a SQL query."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from mmlw.cli.core import main, one_line_errors, open_registry, open_store, settings_of

PARQUET_SUFFIXES = (".parquet", ".pq")


@main.command("import")
@click.argument("machine_id")
@click.argument(
    "file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["csv", "parquet"]),
    default=None,
    help="default: parquet for .parquet/.pq files, else csv",
)
@click.option("--sql-url", default=None, help="SQLAlchemy URL to read from (with --query)")
@click.option("--query", default=None, help="SQL query returning the readings")
@click.option("--sep", default=None, help="CSV separator (default: sniffed from the header)")
@click.option("--time-column", default=None, help="default: datetime or timestamp")
@click.option(
    "--sensor", "sensors", multiple=True, help="sensor column (repeat; default: all numeric)"
)
@click.option(
    "--label", "label_column", default=None, help="0/1 label column (default: anomaly, if present)"
)
@click.option(
    "--nan",
    type=click.Choice(["reject", "drop"]),
    default="reject",
    show_default=True,
    help="empty/NaN/inf cells: fail naming the row, or skip such rows",
)
@click.option("--tz", "timezone", default="UTC", show_default=True, help="zone of naive times")
@click.option("--batch-rows", default=1000, show_default=True, help="readings per stored batch")
@click.option(
    "--score/--no-score",
    default=True,
    show_default=True,
    help="queue the new batches for scoring by the machine's champion (needs RabbitMQ)",
)
@click.pass_context
@one_line_errors
def import_(
    ctx: click.Context,
    machine_id: str,
    file: Path | None,
    file_format: str | None,
    sql_url: str | None,
    query: str | None,
    sep: str | None,
    time_column: str | None,
    sensors: tuple[str, ...],
    label_column: str | None,
    nan: str,
    timezone: str,
    batch_rows: int,
    score: bool,
) -> None:
    """Import MACHINE_ID's past readings from FILE (CSV or Parquet) or a SQL query,
    straight into the store. Importing the same rows again adds nothing."""
    from mmlw.services.import_sources import csv_source, parquet_source, sql_source
    from mmlw.services.importing import ImportOptions, import_readings

    if (file is None) == (sql_url is None) or (sql_url is None) != (query is None):
        raise click.UsageError("give either FILE or both --sql-url and --query")
    if file is None:
        assert sql_url is not None and query is not None
        source = sql_source(sql_url, query)
    elif (file_format or ("parquet" if file.suffix.lower() in PARQUET_SUFFIXES else "csv")) == (
        "parquet"
    ):
        source = parquet_source(file)
    else:
        source = csv_source(file, sep=sep)
    options = ImportOptions(
        machine_id=machine_id,
        time_column=time_column,
        sensors=sensors or None,
        label_column=label_column,
        nan=nan,  # type: ignore[arg-type]  # a click.Choice of NanPolicy
        timezone=timezone,
        batch_rows=batch_rows,
    )
    settings = settings_of(ctx)
    with open_store(settings) as store, _progress(source.total_rows, machine_id) as progress:
        report = import_readings(source.chunks, options, store, on_progress=progress)
    click.echo(
        f"imported {report.rows} readings of {machine_id} in {report.batches} batches: "
        f"{report.new_rows} new, {report.rows - report.new_rows} already stored, "
        f"{report.dropped_rows} rows dropped; sensors {report.columns}, "
        f"labels {report.label_column or 'none'}"
        + (f"; ignored {report.ignored_columns}" if report.ignored_columns else "")
    )
    if score and report.new_batch_ids:
        click.echo(_queue(settings, report))


def _queue(settings: Any, report: Any) -> str:
    from mmlw.messaging.dispatch import CeleryDispatcher
    from mmlw.messaging.topology import Topology
    from mmlw.services.importing import queue_scoring

    if settings.uses_local_broker:
        return "not queued for scoring: MMLW_BROKER__URL is memory:// (no worker would see it)"
    dispatcher = CeleryDispatcher.from_broker(
        settings.broker.url, Topology(settings.broker.namespace)
    )
    queue_scoring(report, registry=open_registry(settings), dispatcher=dispatcher)
    if report.scoring_version is None:
        return "not queued for scoring: no champion yet (its train job scores stored readings)"
    queued, version = report.queued_for_scoring, report.scoring_version
    return f"queued {queued} batches for scoring by version {version}"


@contextmanager
def _progress(total: int | None, machine_id: str) -> Iterator[Callable[[int], None]]:
    """A rows-read callback drawing a bar on stderr (a running count when the total is
    unknown)."""
    label = f"importing {machine_id}"
    if total is None:
        seen = [0]

        def count(rows: int) -> None:
            seen[0] += rows
            click.echo(f"{label}: {seen[0]} rows read", err=True)

        yield count
        return
    with click.progressbar(length=max(total, 1), label=label, file=sys.stderr) as bar:
        yield bar.update
