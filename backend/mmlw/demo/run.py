"""``mmlw demo``: the whole pipeline on one machine.

Starts (in this process) the store, an in-process Celery worker, the ingest consumer,
the HTTP API, the dashboard and a fleet of simulated machines; trains each machine's model
once it has ``warmup`` readings; keeps scoring; prints progress and, at the end, how the
injected faults scored against normal operation. With ``MMLW_BROKER__URL=amqp://...`` the same
pieces talk through RabbitMQ.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import uvicorn

from mmlw.alerts.config import FlagsCondition
from mmlw.alerts.mailcatcher import MailCatcher
from mmlw.api.app import create_app
from mmlw.demo.alerts import (
    FaultCoverage,
    fault_coverage,
    on_readings_clock,
    reading_position,
)
from mmlw.detectors.default import DEFAULT_DETECTOR
from mmlw.errors import MMLWError, ServiceUnavailable
from mmlw.messaging.broker_check import broker_location
from mmlw.messaging.sink import sink_from_settings
from mmlw.registry.base import CHAMPION
from mmlw.schemas.jobs import JobState, TrainRequest
from mmlw.services.alerting import tick
from mmlw.services.jobs import submit_training
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.store.tables import utcnow
from mmlw.workers.celery_app import create_celery
from mmlw.workers.context import WorkerContext
from mmlw.workers.runtime import ingest_consumer_thread, scorer_thread, worker_thread
from mmlw.workers.simulator import (
    SimulationStats,
    SyntheticMachine,
    run_simulation,
    synthetic_fleet,
)

__all__ = ["DemoOptions", "DemoReport", "MachineReport", "run_demo"]

log = logging.getLogger(__name__)

#: seconds from a batch's arrival to its alert evaluation, allowed when matching alerts
#: to faults
COVERAGE_LATENCY_S = 3.0
#: without it `mlflow ui` also starts seven job-runner processes (~1.5 GB) for MLflow's GenAI
#: jobs, which MMLW never submits
NO_JOB_RUNNERS = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false"


@dataclass(frozen=True)
class DemoOptions:
    machines: int = 3
    speedup: float = 30.0
    batch_size: int = 30
    warmup: int = 600
    duration_s: float | None = None
    detector: str = DEFAULT_DETECTOR
    serve_api: bool = True
    seed: int = 0
    catch_mail: bool = True


@dataclass
class MachineReport:
    machine_id: str
    readings: int
    scored: int
    champion_version: int | None
    mean_score_normal: float | None
    mean_score_fault: float | None
    flag_rate_normal: float | None
    flag_rate_fault: float | None
    normal_readings: int = 0
    normal_flagged: int = 0


@dataclass
class DemoReport:
    machines: list[MachineReport] = field(default_factory=list)
    api_url: str | None = None
    alerts: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    coverage: FaultCoverage | None = None

    def lines(self) -> list[str]:
        out = [
            f"{'machine':<12} {'readings':>9} {'scored':>8} {'model':>6} "
            f"{'score normal':>13} {'score fault':>12} {'flagged normal':>15} {'flagged fault':>14}"
        ]
        for m in self.machines:
            out.append(
                f"{m.machine_id:<12} {m.readings:>9} {m.scored:>8} "
                f"{('v' + str(m.champion_version)) if m.champion_version else '-':>6} "
                f"{_fmt(m.mean_score_normal):>13} {_fmt(m.mean_score_fault):>12} "
                f"{_pct(m.flag_rate_normal):>15} {_pct(m.flag_rate_fault):>14}"
            )
        normal = sum(m.normal_readings for m in self.machines)
        if normal:
            flagged = sum(m.normal_flagged for m in self.machines)
            out.append(f"normal readings flagged:   {100 * flagged / normal:.2f}% of {normal}")
        if self.coverage is not None:
            c = self.coverage
            out.append(f"injected faults alerted:   {c.alerted} of {c.faults}")
            out.append(f"alerts overlapping faults: {c.on_faults} of {c.alerts}")
        out.append(f"alerts: {len(self.alerts)}")
        out.extend(f"  {line}" for line in self.alerts)
        out.append(f"alert e-mails captured: {len(self.emails)}")
        out.extend(f"  {subject}" for subject in self.emails[:10])
        return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def machine_report(store: Store, machine_id: str, champion: int | None) -> MachineReport:
    """Mean champion score and flag rate on normal vs fault readings (ground-truth labels)."""
    machine = store.machines.get(machine_id)
    _values, labels = store.readings.window(machine_id)
    scores = store.scores.query(machine_id)
    report = MachineReport(
        machine_id, machine.n_readings, machine.n_scored, champion, None, None, None, None
    )
    if not scores or labels is None:
        return report
    by_time = dict(zip(labels.index.as_unit("us").asi8, labels.to_numpy(), strict=True))
    stamps = np.concatenate([s.timestamps_us for s in scores])
    score = np.concatenate([s.scores for s in scores])
    flags = np.concatenate([s.flags for s in scores])
    truth = np.array([by_time.get(int(t), -1) for t in stamps])
    for value, name in ((0, "normal"), (1, "fault")):
        mask = truth == value
        if mask.any():
            setattr(report, f"mean_score_{name}", float(score[mask].mean()))
            setattr(report, f"flag_rate_{name}", float(flags[mask].mean()))
    report.normal_readings = int((truth == 0).sum())
    report.normal_flagged = int(flags[truth == 0].sum())
    return report


def demo_coverage(
    store: Store,
    fleet: list[SyntheticMachine],
    rules: set[str],
    started: datetime,
    options: DemoOptions,
) -> FaultCoverage:
    """How the alerts of ``rules`` met the faults injected into ``fleet`` since ``started``
    (see :mod:`mmlw.demo.alerts`)."""
    now = utcnow()
    total = FaultCoverage(0, 0, 0, 0)
    for machine in fleet:

        def position(at: datetime, machine: SyntheticMachine = machine) -> float:
            return reading_position(
                at, started, options.speedup, machine.period_s, options.batch_size
            )

        alerts = [
            (position(a.fired_at), position(a.resolved_at or now))
            for a in store.alerts.list(machine_id=machine.machine_id, limit=100_000)
            if a.fired_at is not None and a.rule in rules
        ]
        faults = [(e.start_index, e.end_index) for e in machine.fault_log]
        slack = options.batch_size + options.speedup * COVERAGE_LATENCY_S / machine.period_s
        total = total + fault_coverage(faults, alerts, slack)
    return total


def run_demo(
    settings: Settings,
    options: DemoOptions,
    *,
    echo: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> DemoReport:
    """Run until ``options.duration_s`` passes or ``stop`` is set; return the final report."""
    stop = stop or threading.Event()
    if options.serve_api:
        _check_port_free(settings.api.host, settings.api.port)
    settings.ensure_data_dir()
    catcher = None
    if options.catch_mail:
        # alert e-mails go to a local catcher (saved under data_dir/mail) on a free port
        catcher = MailCatcher(save_dir=settings.data_dir / "mail").start()
        smtp = settings.alerts.smtp.model_copy(update={"host": "127.0.0.1", "port": catcher.port})
        alerts = settings.alerts.model_copy(update={"smtp": smtp})
        settings = settings.model_copy(update={"alerts": alerts})
    context = WorkerContext(settings, migrate=True)
    if 0 < options.speedup < float("inf"):
        # the machines' clock runs ``speedup`` times the wall clock: so do the rules
        context.alerts_config = on_readings_clock(context.alerts_config, options.speedup)
    app = create_celery(settings, context)
    store = context.store
    registry = context.registry
    registry.experiment_id()  # create the MLflow store before the first train job
    sink = sink_from_settings(settings.broker)
    report = DemoReport()
    with (
        worker_thread(app, concurrency=2),
        scorer_thread(settings, context),
        ingest_consumer_thread(settings, context),
    ):
        server, server_thread = None, None
        if options.serve_api:
            api = create_app(
                settings,
                store=store,
                registry=registry,
                dispatcher=context.dispatcher,
                publisher=sink_from_settings(settings.broker),
            )
            config = uvicorn.Config(
                api, host=settings.api.host, port=settings.api.port, log_level="warning"
            )
            server = uvicorn.Server(config)
            server_thread = threading.Thread(target=server.run, name="api", daemon=True)
            server_thread.start()
            report.api_url = f"http://{settings.api.host}:{settings.api.port}"
        echo(f"data dir:   {settings.data_dir}")
        echo(f"store:      {settings.resolved_database_url}")
        echo(f"broker:     {broker_location(settings.broker.url)}")
        if report.api_url:
            echo(f"API:        {report.api_url}/docs  (machines: {report.api_url}/api/v1/machines)")
        dashboard = _start_dashboard(settings, report.api_url, echo) if report.api_url else None
        echo(
            f"MLflow UI:  {NO_JOB_RUNNERS} mlflow ui --backend-store-uri "
            f"{settings.resolved_tracking_uri} --port 5000 --workers 1"
        )
        if catcher is not None:
            echo(f"alert mail: smtp://127.0.0.1:{catcher.port}, saved in {catcher.save_dir}")
        fleet = synthetic_fleet(options.machines, seed=options.seed, warmup=options.warmup)
        latest: list[SimulationStats] = []
        simulator = threading.Thread(
            target=run_simulation,
            args=(fleet, sink),
            kwargs={
                "batch_size": options.batch_size,
                "speedup": options.speedup,
                "duration_s": options.duration_s,
                "stop": stop,
                "on_progress": latest.append,
            },
            name="simulator",
            daemon=True,
        )
        simulation_started = utcnow()
        simulator.start()
        started = time.monotonic()
        jobs: dict[str, str] = {}
        last_tick = time.monotonic()
        try:
            while not stop.is_set():
                if (
                    options.duration_s is not None
                    and time.monotonic() - started > options.duration_s
                ):
                    break
                _train_when_warm(store, context, options, jobs, echo)
                _progress(store, jobs, started, echo)
                if time.monotonic() - last_tick >= settings.alerts.tick_s:
                    # the periodic evaluation Celery beat runs in a deployment
                    tick(store=store, config=context.alerts_config, dispatcher=context.dispatcher)
                    last_tick = time.monotonic()
                stop.wait(2.0)
        except KeyboardInterrupt:
            echo("stopping ...")
        finally:
            stop.set()
            simulator.join(10)
            time.sleep(1.0)  # let in-flight batches land
            for machine in store.machines.list():
                champion = registry.alias_version(machine.id, CHAMPION)
                report.machines.append(machine_report(store, machine.id, champion))
            scored_rules = {
                r.name
                for r in context.alerts_config.rules
                if isinstance(r.condition, FlagsCondition)
            }
            report.coverage = demo_coverage(store, fleet, scored_rules, simulation_started, options)
            report.alerts = [
                f"#{a.id} {a.machine_id} {a.rule} ({a.severity}) {a.state} "
                f"since {a.started_at:%H:%M:%S}"
                for a in store.alerts.list(limit=20)
            ]
            if catcher is not None:
                report.emails = catcher.subjects()
                catcher.stop()
            if server is not None:
                server.should_exit = True
                assert server_thread is not None
                server_thread.join(10)
            if dashboard is not None:
                dashboard.should_exit = True
            sink.close()
    for line in report.lines():
        echo(line)
    return report


def _start_dashboard(
    settings: Settings, api_url: str, echo: Callable[[str], None]
) -> uvicorn.Server | None:
    """Serve the dashboard (reading this demo's API) in a thread; None if its port is busy.

    The banner's link logs one browser in once, with the demo's key (none when the
    demo's API is open): nobody types a key, and nothing about a deployment changes."""
    from mmlw.frontend.app import create_dashboard
    from mmlw.frontend.login import LoginLink

    board = settings.dashboard
    try:
        _check_port_free(board.host, board.port)
    except ServiceUnavailable:
        echo(f"Dashboard:  port {board.port} is busy; set MMLW_DASHBOARD__PORT (running without)")
        return None
    key = board.api_key or (settings.api.keys[0] if settings.api.keys else None)
    board = board.model_copy(update={"api_url": api_url, "api_key": key})
    link = LoginLink(key=key.get_secret_value() if key else None)
    app = create_dashboard(settings.model_copy(update={"dashboard": board}), login_link=link)
    config = uvicorn.Config(
        app.server, host=board.host, port=board.port, interface="wsgi", log_level="warning"
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name="dashboard", daemon=True).start()
    echo(f"Dashboard:  http://{board.host}:{board.port}{link.path}  (logs you in, once)")
    return server


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as probe:
        # as uvicorn binds: connections of a server stopped moments ago (TIME_WAIT) must
        # not make a restarted demo run without its dashboard; a listener still fails
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ServiceUnavailable(
                f"api: cannot listen on {host}:{port} ({exc.strerror}); pass --port"
            ) from None


def _train_when_warm(store, context, options, jobs, echo) -> None:  # type: ignore[no-untyped-def]
    for machine in store.machines.list():
        if machine.id in jobs or machine.n_readings < options.warmup:
            continue
        try:
            job = submit_training(
                TrainRequest(
                    machine_id=machine.id, detector=options.detector, last_n=options.warmup
                ),
                store=store,
                dispatcher=context.dispatcher,
            )
        except MMLWError as exc:
            echo(f"train {machine.id}: {exc}")
            continue
        jobs[machine.id] = str(job.id)
        echo(
            f"train job {job.id} queued for {machine.id} "
            f"({options.warmup} readings, {options.detector})"
        )


def _progress(store, jobs, started, echo) -> None:  # type: ignore[no-untyped-def]
    parts = []
    for machine in store.machines.list():
        state = "-"
        if machine.id in jobs:
            job = store.jobs.get(jobs[machine.id])
            state = job.state.value
            if job.state is JobState.FAILED:
                state += f" ({job.error})"
            elif job.state is JobState.SUCCEEDED and job.result:
                state = f"v{job.result['version']}"
        parts.append(
            f"{machine.id}: {machine.n_readings} read, {machine.n_scored} scored, model {state}"
        )
    echo(f"[{time.monotonic() - started:6.1f}s] " + " | ".join(parts))
