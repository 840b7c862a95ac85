"""``mmlw bench``: measure the pipeline on the real stack against baselines and limits."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from mmlw.cli.core import main, one_line_errors, settings_of

LOOPBACK_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
LOOPBACK_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PHASES = ("training", "limits", "throughput", "latency", "baselines", "scaleout")


@main.command()
@click.option(
    "--scenario",
    default="default",
    show_default=True,
    help="name in bench/scenarios, or a YAML path",
)
@click.option(
    "--readings", type=int, default=None, help="end-to-end count (default: the scenario's)"
)
@click.option("--detector", "detectors", multiple=True, help="repeatable (default: the scenario's)")
@click.option(
    "--phase", "phases", multiple=True, type=click.Choice(PHASES), help="repeatable; default: all"
)
@click.option("--repeats", type=int, default=None, help="runs of each timed measurement")
@click.option("--batch-size", type=int, default=None, help="readings per message / request")
@click.option("--machines", type=int, default=None)
@click.option("--concurrency", type=int, default=None, help="Celery worker pool size")
@click.option("--scorers", type=int, default=None, help="`mmlw scorer` processes")
@click.option("--predict-prefetch", type=int, default=None, help="tasks reserved per pool slot")
@click.option("--pool", type=click.Choice(["prefork", "threads", "solo"]), default=None)
@click.option("--store", type=click.Choice(["postgresql", "sqlite"]), default=None)
@click.option("--latency-rate", type=float, default=None, help="offered readings/s")
@click.option("--latency-duration", type=float, default=None, help="seconds")
@click.option(
    "--latency-batch-size", "latency_batch_sizes", type=int, multiple=True, help="repeatable"
)
@click.option("--baseline-readings", type=int, default=None)
@click.option(
    "--broker-url", default=None, help=f"default: MMLW_BROKER__URL, else {LOOPBACK_RABBITMQ}"
)
@click.option(
    "--postgres-url",
    default=LOOPBACK_POSTGRES,
    show_default=True,
    help="admin URL; the bench creates and drops its own database there",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path),
    default=Path("bench/results"),
    show_default=True,
)
@click.pass_context
@one_line_errors
def bench(
    ctx: click.Context,
    scenario: str,
    readings: int | None,
    detectors: tuple[str, ...],
    phases: tuple[str, ...],
    repeats: int | None,
    batch_size: int | None,
    machines: int | None,
    concurrency: int | None,
    scorers: int | None,
    predict_prefetch: int | None,
    pool: str | None,
    store: str | None,
    latency_rate: float | None,
    latency_duration: float | None,
    latency_batch_sizes: tuple[int, ...],
    baseline_readings: int | None,
    broker_url: str | None,
    postgres_url: str,
    output_dir: Path,
) -> None:
    """Benchmark the pipeline end to end (RabbitMQ, ingest, scorers, store, MLflow)
    against `mlflow models serve`, a plain pika consumer and the raw limits of this machine.

    Prints a table with ratios and writes JSON to --output-dir. Needs RabbitMQ (and
    PostgreSQL unless --store sqlite); everything it creates there is removed afterwards.
    """
    from pydantic import ValidationError

    from mmlw.bench import BenchTargets, load_scenario, run_bench
    from mmlw.schemas.readings import describe_validation_error

    if not ctx.find_root().params.get("verbose"):
        logging.getLogger("pika").setLevel(logging.WARNING)
    settings = settings_of(ctx)
    overrides: dict[str, Any] = {
        "throughput.readings": readings,
        "detectors": list(detectors) or None,
        "phases": list(phases) or None,
        "repeats": repeats,
        "batch_size": batch_size,
        "machines": machines,
        "stack.concurrency": concurrency,
        "stack.scorers": scorers,
        "stack.predict_prefetch": predict_prefetch,
        "stack.pool": pool,
        "stack.store": store,
        "latency.rate": latency_rate,
        "latency.duration_s": latency_duration,
        "latency.batch_sizes": list(latency_batch_sizes) or None,
        "baselines.readings": baseline_readings,
    }
    try:
        plan = load_scenario(scenario).with_updates(
            **{k: v for k, v in overrides.items() if v is not None}
        )
    except ValidationError as exc:
        raise click.ClickException(f"scenario: {describe_validation_error(exc)}") from exc
    url = broker_url or (LOOPBACK_RABBITMQ if settings.uses_local_broker else settings.broker.url)
    report = run_bench(
        settings,
        plan,
        targets=BenchTargets(broker_url=url, postgres_admin_url=postgres_url),
        echo=lambda line: click.echo(line, err=True),
    )
    click.echo(report.table())
    path = report.write(output_dir)
    click.echo(f"\nJSON: {path}")
