"""The pipeline commands: demo, api, worker, ingest, simulate, publish, train, jobs, models,
machines, evaluate, dlq, db."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from mmlw.cli.core import (
    check_broker_now,
    main,
    one_line_errors,
    open_registry,
    open_store,
    parse_params,
    require_broker,
    settings_of,
    train_dispatcher,
)

log = logging.getLogger(__name__)


@main.command()
@click.option("--machines", default=3, show_default=True, help="simulated machines")
@click.option("--speedup", default=30.0, show_default=True, help="simulated seconds per second")
@click.option("--warmup", default=600, show_default=True, help="readings before training")
@click.option(
    "--detector",
    default=None,
    help="catalog name (default: MMLW_MODELS__DEFAULT_DETECTOR, adaptive)",
)
@click.option("--duration", type=float, default=None, help="stop after N seconds (default: Ctrl-C)")
@click.option("--port", type=int, default=None, help="API port (default: MMLW_API__PORT or 8000)")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.pass_context
@one_line_errors
def demo(
    ctx: click.Context,
    machines: int,
    speedup: float,
    warmup: int,
    detector: str | None,
    duration: float | None,
    port: int | None,
    data_dir: Path | None,
) -> None:
    """Run the whole pipeline here: simulated machines -> broker -> workers -> MLflow -> API."""
    from mmlw.workers.demo import DemoOptions, run_demo

    settings = settings_of(ctx)
    check_broker_now(settings)
    updates: dict[str, Any] = {}
    if data_dir is not None:
        updates["data_dir"] = data_dir.expanduser().resolve()
    if port is not None:
        updates["api"] = settings.api.model_copy(update={"port": port})
    settings = settings.model_copy(update=updates)
    stop = threading.Event()
    # SIGTERM (docker stop, a supervisor) ends the demo like Ctrl-C: with its report
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    run_demo(
        settings,
        DemoOptions(
            machines=machines,
            speedup=speedup,
            warmup=warmup,
            detector=detector or settings.models.default_detector,
            duration_s=duration,
        ),
        echo=click.echo,
        stop=stop,
    )


@main.command()
@click.option("--host", default=None, help="default: MMLW_API__HOST")
@click.option("--port", type=int, default=None, help="default: MMLW_API__PORT")
@click.pass_context
@one_line_errors
def api(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the HTTP API (FastAPI on uvicorn)."""
    import uvicorn

    from mmlw.api.app import create_app

    settings = settings_of(ctx)
    uvicorn.run(
        create_app(settings),
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_level="info",
    )


@main.command()
@click.option(
    "--queues",
    default="train,predict,notify",
    show_default=True,
    help="comma-separated: train, predict, notify",
)
@click.option("--concurrency", type=int, default=2, show_default=True)
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="serve Prometheus metrics of this worker and all its pool processes",
)
@click.option(
    "--hostname",
    default=None,
    help="Celery node name (default: <namespace>-<pid>@<host>, unique on a host)",
)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "threads", "solo"]),
    default="prefork",
    show_default=True,
)
@click.option(
    "--blas-threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="BLAS threads per worker process (more only compete with the other processes)",
)
@click.pass_context
@one_line_errors
def worker(
    ctx: click.Context,
    queues: str,
    concurrency: int,
    metrics_port: int | None,
    hostname: str | None,
    pool: str,
    blas_threads: int,
) -> None:
    """Run a Celery worker for train/predict/notify work (scale by running more)."""
    from mmlw.alerts.notifiers import log_email_status
    from mmlw.messaging.broker_check import wait_for_broker
    from mmlw.messaging.topology import Topology
    from mmlw.workers.blas_threads import limit_blas_threads
    from mmlw.workers.celery_app import create_celery, default_node_name, worker_context
    from mmlw.workers.warm_start import connect_warm_start

    settings = settings_of(ctx)
    require_broker(settings, "worker")
    wait_for_broker(settings.broker.url, log)  # says so while it waits; refusals are errors
    log_email_status(settings.alerts.smtp, log)
    if metrics_port is not None:  # first: the instruments of every process, summed
        from mmlw.workers.metrics_server import serve_worker_metrics

        serve_worker_metrics(metrics_port)
    topology = Topology(settings.broker.namespace)
    names = [topology.task_queue_name(q.strip()) for q in queues.split(",") if q.strip()]
    app = create_celery(settings)
    connect_warm_start(worker_context(app))
    limit_blas_threads(blas_threads)
    argv = ["worker", "-Q", ",".join(names), "-c", str(concurrency), "-P", pool, "-l", "INFO"]
    node = hostname or default_node_name(settings.broker.namespace)
    app.worker_main([*argv, "-n", node])


@main.command()
@click.option(
    "--schedule-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="where beat keeps its state (default: <data dir>/celerybeat-schedule)",
)
@click.pass_context
@one_line_errors
def beat(ctx: click.Context, schedule_file: Path | None) -> None:
    """Run Celery beat: the periodic alert evaluation (no data, pending, repeats) every
    MMLW_ALERTS__TICK_S. Run exactly one per deployment."""
    from mmlw.workers.celery_app import create_celery

    settings = settings_of(ctx)
    require_broker(settings, "beat")
    settings.ensure_data_dir()
    schedule = schedule_file or settings.data_dir / "celerybeat-schedule"
    create_celery(settings).Beat(schedule=str(schedule), loglevel="INFO").run()


@main.command()
@click.option(
    "--prefetch",
    type=int,
    default=256,
    show_default=True,
    help="unacknowledged messages held; bounds the messages written per transaction",
)
@click.pass_context
@one_line_errors
def ingest(ctx: click.Context, prefetch: int) -> None:
    """Consume readings from the ingest queue: validate, store, enqueue scoring."""
    from kombu import Connection

    from mmlw.messaging.broker_check import BrokerUnreachable, broker_location, check_broker
    from mmlw.workers.consumers.ingest import IngestConsumer
    from mmlw.workers.context import WorkerContext

    settings = settings_of(ctx)
    require_broker(settings, "ingest")
    # a refused login or vhost is an error; a broker that is down is waited for (the
    # consumer says so, and again every 15 s)
    with contextlib.suppress(BrokerUnreachable):
        check_broker(settings.broker.url)
    context = WorkerContext(settings)
    with Connection(settings.broker.url) as connection:
        consumer = IngestConsumer.for_context(connection, context, prefetch)
        queue, where = context.topology.ingest_queue_name, broker_location(settings.broker.url)
        click.echo(f"consuming {queue} on {where}")
        try:
            consumer.run()
        except KeyboardInterrupt:
            consumer.stop()


# -- publishing ------------------------------------------------------------------------
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


# -- models and jobs --------------------------------------------------------------------
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
    settings = settings_of(ctx)
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


_STREAM_ONLY = ("batch_size",)
_BATCH_ONLY = (
    "recipes",
    "threshold_quantile",
    "threshold_factor",
    "smoothing",
    "smoothing_window",
    "smoothing_k",
    "hold",
    "cp_window",
    "cp_k",
    "cp_rolling_max",
    "cp_edges",
    "experiment",
)


@main.command()
@click.option(
    "--mode",
    type=click.Choice(["batch", "stream"]),
    default="batch",
    show_default=True,
    help="batch: the SKAB protocol; stream: replay each file through the serving path",
)
@click.option(
    "--dataset",
    "dataset_path",
    required=True,
    type=click.Path(path_type=Path),
    help="folder in SKAB or NAB layout",
)
@click.option(
    "--detector",
    "detectors",
    multiple=True,
    help="catalog name, repeatable (batch default: all, unless --recipe is given; stream "
    "default: the product's default detector; 'all': every catalog detector)",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="stream mode: readings per served batch",
)
@click.option("--recipe", "recipes", multiple=True, help="named recipe, e.g. skab_isolation_forest")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="detector parameter")
@click.option("--threshold-quantile", type=float, default=0.99, show_default=True)
@click.option(
    "--threshold-factor",
    type=float,
    default=1.0,
    show_default=True,
    help="threshold = quantile of training scores x this factor",
)
@click.option(
    "--smoothing",
    type=click.Choice(["none", "rolling_median", "k_of_n"]),
    default="none",
    show_default=True,
    help="alarm smoothing over --smoothing-window rows",
)
@click.option("--smoothing-window", type=int, default=3, show_default=True)
@click.option("--smoothing-k", type=int, default=2, show_default=True, help="k for k_of_n")
@click.option("--hold", type=int, default=0, show_default=True, help="alarms keep firing N rows")
@click.option(
    "--cp-window",
    type=int,
    default=0,
    show_default=True,
    help="changepoints from --cp-k of the last N raw flags (0 = from the alarms)",
)
@click.option("--cp-k", type=int, default=1, show_default=True)
@click.option("--cp-rolling-max", type=int, default=0, show_default=True, help="0 = none")
@click.option(
    "--cp-edges", type=click.Choice(["rising", "both"]), default="rising", show_default=True
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="output folder")
@click.option("--experiment", default="mmlw-evaluation", show_default=True)
@click.option("--no-mlflow", is_flag=True, help="do not log runs to MLflow")
@click.pass_context
@one_line_errors
def evaluate(
    ctx: click.Context,
    mode: str,
    dataset_path: Path,
    detectors: tuple[str, ...],
    batch_size: int,
    recipes: tuple[str, ...],
    params: tuple[str, ...],
    threshold_quantile: float,
    threshold_factor: float,
    smoothing: str,
    smoothing_window: int,
    smoothing_k: int,
    hold: int,
    cp_window: int,
    cp_k: int,
    cp_rolling_max: int,
    cp_edges: str,
    out: Path | None,
    experiment: str,
    no_mlflow: bool,
) -> None:
    """Benchmark detectors: the SKAB protocol (--mode batch) or a replay of what users
    are served (--mode stream); write predictions/detections, metrics and a report.

    Batch mode, per file: fit a fresh detector on the first 400 rows, threshold =
    quantile of its training scores, score the rest. Recipes (--recipe) keep their own
    settings.

    Stream mode: each file is replayed in time order. A model is fitted on its learning
    period as `mmlw train` does (NAB layout: NAB's probation, 15 % of the file capped at
    750 rows; SKAB layout: 400 rows; the models' threshold quantile); the rest is scored
    by the serving scorer in --batch-size batches, and after each batch the alert rules
    of kind `scores` (the product's rules file) are evaluated at the batch's last
    timestamp. A detection is an alert onset (a rule starts firing). Writes
    OUT/detections/<data file path> (timestamp,anomaly_score: 1 at an onset, else 0) and
    OUT/summary.json, with NAB scores (NAB layout) or F1/FAR/MAR and the NAB changepoint
    score (SKAB layout). With several detectors (or --detector all) each writes
    OUT/<detector>/detections/... and OUT/summary.json covers them all. A file a detector
    fails on is reported and written as all zeros. Nothing is logged to MLflow.
    """
    if mode == "stream":
        _reject_options(ctx, _BATCH_ONLY, "--mode stream")
        _evaluate_stream(ctx, dataset_path, detectors, params, batch_size, out)
        return
    _reject_options(ctx, _STREAM_ONLY, "--mode batch")
    from mmlw.evaluation.datasets import load_dataset
    from mmlw.evaluation.protocol import ProtocolConfig
    from mmlw.evaluation.report import metrics_markdown
    from mmlw.evaluation.runner import log_runs, plan_runs, run_evaluation

    settings = settings_of(ctx)
    if not 0.5 < threshold_quantile < 1.0:
        raise click.ClickException("--threshold-quantile: must be in (0.5, 1)")
    if threshold_factor <= 0:
        raise click.ClickException("--threshold-factor: must be positive")
    if min(hold, cp_window, cp_rolling_max) < 0 or smoothing_k < 1 or cp_k < 1:
        raise click.ClickException(
            "--hold, --cp-window, --cp-rolling-max, --smoothing-k, --cp-k: "
            "must not be negative (k at least 1)"
        )
    config = ProtocolConfig(
        threshold_rule="quantile" if threshold_factor == 1.0 else "quantile_multiple",
        threshold_quantile=threshold_quantile,
        threshold_factor=threshold_factor,
        smoothing=smoothing,  # type: ignore[arg-type]
        smoothing_window=smoothing_window,
        smoothing_k=smoothing_k,
        smoothing_hold=hold,
        cp_k=cp_k,
        cp_window=cp_window,
        cp_rolling_max=cp_rolling_max,
        cp_edges=cp_edges,  # type: ignore[arg-type]
    )
    runs = plan_runs(detectors, recipes, parse_params(params), config)
    dataset = load_dataset(dataset_path)
    if out is None:
        out = settings.data_dir / "evaluations" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out = out.expanduser().resolve()
    with click.progressbar(
        length=len(runs) * len(dataset.files), label="evaluating", file=sys.stderr
    ) as bar:
        results, table = run_evaluation(dataset, runs, out, on_file=lambda: bar.update(1))
    click.echo(metrics_markdown(table), nl=False)
    click.echo(f"outputs in {out}")
    if not no_mlflow:
        settings.ensure_data_dir()
        ids = log_runs(
            settings.resolved_tracking_uri,
            experiment,
            results,
            dataset,
            out,
            artifact_root=settings.artifact_root,
        )
        click.echo(
            f"logged MLflow run {ids[0]} with {len(ids) - 1} detector runs "
            f"to experiment {experiment!r}"
        )


def _reject_options(ctx: click.Context, names: tuple[str, ...], mode: str) -> None:
    """UsageError for options given on the command line that ``mode`` does not use."""
    from click.core import ParameterSource

    given = [
        param.opts[0]
        for param in ctx.command.params
        if param.name in names
        and ctx.get_parameter_source(param.name)
        in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    ]
    if given:
        raise click.UsageError(f"{', '.join(given)}: not used with {mode}")


def _evaluate_stream(
    ctx: click.Context,
    dataset_path: Path,
    detectors: tuple[str, ...],
    params: tuple[str, ...],
    batch_size: int,
    out: Path | None,
) -> None:
    """``mmlw evaluate --mode stream`` (see :mod:`mmlw.evaluation.stream`)."""
    from mmlw.alerts.config import load_alerts_config
    from mmlw.detectors.catalog import DETECTORS
    from mmlw.evaluation.datasets import load_dataset
    from mmlw.evaluation.protocol import ProtocolConfig
    from mmlw.evaluation.runner import plan_runs
    from mmlw.evaluation.stream import FileOutcome, score_rules, stream_evaluate, summary_table

    settings = settings_of(ctx)
    names = list(detectors) or [settings.models.default_detector]
    if "all" in names:
        names = sorted(DETECTORS)
    runs = plan_runs(names, (), parse_params(params), ProtocolConfig())
    rules = score_rules(load_alerts_config(settings.alerts.rules_file))
    dataset = load_dataset(dataset_path)
    if out is None:
        out = settings.data_dir / "evaluations" / datetime.now().strftime("%Y%m%d-%H%M%S")
    out = out.expanduser().resolve()

    def progress(detector: str, f: FileOutcome) -> None:
        failed = f"  ERROR {f.error}" if f.error else ""
        click.echo(
            f"{detector} {f.file}: {f.rows} rows, {f.detections} detections, "
            f"{f.alerts} alerts, {f.seconds:.2f} s{failed}"
        )

    summaries = stream_evaluate(
        dataset,
        out,
        [(run.detector, dict(run.params)) for run in runs],
        batch_size=batch_size,
        quantile=settings.models.threshold_quantile,
        rules=rules,
        on_file=progress,
    )
    click.echo(summary_table(summaries, dataset.layout), nl=False)
    click.echo(f"outputs in {out}")


# -- dead letters ----------------------------------------------------------------------
@main.group()
def dlq() -> None:
    """Dead letters: rejected messages, kept for inspection, replay and purge."""


@dlq.command("list")
@click.option("--limit", default=20, show_default=True)
@click.option("--pending", is_flag=True, help="only those not replayed yet")
@click.pass_context
@one_line_errors
def dlq_list(ctx: click.Context, limit: int, pending: bool) -> None:
    """List dead letters, newest first, with the reason each was rejected."""
    store = open_store(settings_of(ctx))
    try:
        for d in store.dead_letters.list(limit, include_replayed=not pending):
            replayed = f"replayed x{d.replay_count}" if d.replayed_at else "pending"
            click.echo(
                f"{d.id:>6}  {d.received_at:%Y-%m-%d %H:%M:%S}  {d.source:<5} "
                f"{d.routing_key or '-':<16} {len(d.body):>8} B  {replayed:<12} {d.reason}"
            )
    finally:
        store.close()


@dlq.command("show")
@click.argument("dead_letter_id", type=int)
@click.pass_context
@one_line_errors
def dlq_show(ctx: click.Context, dead_letter_id: int) -> None:
    """Show one dead letter whole; the body as text if UTF-8, else base64."""
    store = open_store(settings_of(ctx))
    try:
        d = store.dead_letters.get(dead_letter_id)
    finally:
        store.close()
    body, encoding = d.decoded_body()
    record = {
        "id": d.id,
        "received_at": d.received_at.isoformat(),
        "source": d.source,
        "routing_key": d.routing_key,
        "message_id": d.message_id,
        "reason": d.reason,
        "headers": d.headers,
        "replayed_at": d.replayed_at.isoformat() if d.replayed_at else None,
        "replay_count": d.replay_count,
        "body_encoding": encoding,
        "body_bytes": len(d.body),
        "body": body,
    }
    click.echo(json.dumps(record, indent=2, default=str))


@dlq.command("replay")
@click.argument("dead_letter_id", type=int)
@click.option(
    "--body-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="a fixed readings message (JSON) to send instead of the stored body",
)
@click.pass_context
@one_line_errors
def dlq_replay(ctx: click.Context, dead_letter_id: int, body_file: Path | None) -> None:
    """Validate and publish a dead letter again through the readings exchange."""
    from mmlw.messaging.sink import sink_from_settings
    from mmlw.services.dead_letters import replay

    settings = settings_of(ctx)
    require_broker(settings, "dlq replay")
    body = body_file.read_bytes() if body_file is not None else None
    store = open_store(settings)
    try:
        sink = sink_from_settings(settings.broker)
        try:
            done = replay(
                dead_letter_id,
                store=store,
                publisher=sink,
                body_override=body,
                max_readings=settings.broker.max_batch_readings,
            )
        finally:
            sink.close()
    finally:
        store.close()
    click.echo(
        f"replayed dead letter {dead_letter_id} as message {done.batch.message_id} "
        f"({len(done.batch)} readings of {done.batch.machine_id}), "
        f"replay {done.dead_letter.replay_count}"
    )


@dlq.command("purge")
@click.option("--all", "purge_all", is_flag=True, help="every dead letter")
@click.option("--older-than-hours", type=float, default=None, help="received over H hours ago")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.pass_context
@one_line_errors
def dlq_purge(
    ctx: click.Context, purge_all: bool, older_than_hours: float | None, yes: bool
) -> None:
    """Delete dead letters: --all, or those older than --older-than-hours."""

    if purge_all == (older_than_hours is not None):
        raise click.ClickException("dlq purge: give exactly one of --all or --older-than-hours")
    if older_than_hours is not None and older_than_hours < 0:
        raise click.ClickException("dlq purge: --older-than-hours must be >= 0")
    older_than = (
        None if older_than_hours is None else datetime.now(UTC) - timedelta(hours=older_than_hours)
    )
    what = "all dead letters" if purge_all else f"dead letters older than {older_than_hours} h"
    if not yes and not click.confirm(f"delete {what}?", err=True):
        raise click.ClickException("dlq purge: not confirmed; nothing deleted")
    store = open_store(settings_of(ctx))
    try:
        count = store.dead_letters.purge(older_than=older_than, everything=purge_all)
    finally:
        store.close()
    click.echo(f"purged {count} dead letters")


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
