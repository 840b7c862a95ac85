"""The long-running processes: ``mmlw demo``, ``api``, ``worker``, ``beat`` and ``ingest``.

Each runs until stopped; a deployment runs several of them (compose runs one per
container).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import click

from mmlw.cli.core import (
    check_broker_now,
    main,
    one_line_errors,
    require_broker,
    require_current_schema,
    require_own_registry,
    settings_of,
)

__all__ = ["api", "beat", "demo", "ingest", "worker"]

log = logging.getLogger(__name__)


BLAS_THREADS = click.option(
    "--blas-threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="BLAS threads per process (more only compete with the other processes)",
)


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
    from mmlw.demo.run import DemoOptions, run_demo

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
    from mmlw.api.malloc import limit_malloc_arenas

    settings = settings_of(ctx)
    require_current_schema(settings)
    require_own_registry(settings)
    limit_malloc_arenas()  # before the thread pool exists
    uvicorn.run(
        create_app(settings),
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_level="info",
        timeout_keep_alive=settings.api.keep_alive_s,
        h11_max_incomplete_event_size=settings.api.max_header_bytes,
        limit_concurrency=settings.api.max_connections,
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
@BLAS_THREADS
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
    require_current_schema(settings)
    require_own_registry(settings, fork=pool == "prefork")
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
    # no mingle (a start-up exchange of revoked tasks MMLW never revokes, over a reply
    # queue whose exclusive declare failed with RESOURCE_LOCKED and stopped a worker with
    # exit code 0 in the bench) and no gossip (events of other workers nobody reads)
    argv += ["--without-mingle", "--without-gossip"]
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
    require_current_schema(settings)
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


@main.command()
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="serve this scorer's Prometheus metrics (scoring time, model loads, refusals)",
)
@BLAS_THREADS
@click.pass_context
@one_line_errors
def scorer(ctx: click.Context, metrics_port: int | None, blas_threads: int) -> None:
    """Stream live readings with their machines' champions: alert rules, drift, scores.

    Every scorer subscribes to every partition of the scoring path; the broker gives each
    partition to one scorer at a time and to the next when it stops or dies, and scorers
    spread the partitions among themselves. Run one or more per host (at most
    MMLW_BROKER__SCORE_PARTITIONS share the work)."""
    from kombu import Connection

    from mmlw.messaging.broker_check import BrokerUnreachable, broker_location, check_broker
    from mmlw.workers.blas_threads import limit_blas_threads
    from mmlw.workers.context import WorkerContext
    from mmlw.workers.runtime import partition_scorer

    settings = settings_of(ctx)
    require_broker(settings, "scorer")
    require_current_schema(settings)
    require_own_registry(settings, fork=False)
    with contextlib.suppress(BrokerUnreachable):
        check_broker(settings.broker.url)
    limit_blas_threads(blas_threads)
    if metrics_port is not None:  # one process: its own instruments, as they are
        from prometheus_client import start_http_server

        from mmlw.observability.metrics import instruments

        start_http_server(metrics_port, registry=instruments().registry)
    context = WorkerContext(settings)
    # heartbeats: a scorer on a host that vanished loses its partitions within a minute
    with Connection(settings.broker.url, heartbeat=30) as connection:
        scorer = partition_scorer(connection, context)
        topology, where = context.topology, broker_location(settings.broker.url)
        click.echo(
            f"scoring {topology.score_partitions} partitions "
            f"({topology.score_queue_name(0)} ..) on {where}"
        )
        try:
            scorer.run()
        except KeyboardInterrupt:
            scorer.stop()
