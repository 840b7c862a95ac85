"""One bench run: sandbox -> models -> limits -> the stack end to end -> baselines -> report.

Phases run one after another, so each has the machine to itself (apart from whatever
else runs on it: the report records the load average and the CPU other processes used).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from mmlw.bench.baselines import mlflow_serve_baseline
from mmlw.bench.consumer_runs import run_consumer_group
from mmlw.bench.e2e import run_latency, run_throughput, warm_up
from mmlw.bench.limits import raw_scoring
from mmlw.bench.payloads import BodyPool
from mmlw.bench.plain_consumer import ModelRef
from mmlw.bench.probe import StoreProbe
from mmlw.bench.report import BenchReport, environment
from mmlw.bench.sandbox import Sandbox, sandbox
from mmlw.bench.scenarios import Scenario
from mmlw.bench.stack import Stack, StackOptions
from mmlw.bench.training import measure_training, store_history
from mmlw.messaging.topology import Topology
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas import TrainRequest
from mmlw.services.training import train_machine
from mmlw.settings import Settings
from mmlw.store import Store

__all__ = ["BenchTargets", "run_bench"]

Echo = Callable[[str], None]
_SHORT = {"isolation_forest": "if"}


@dataclass(frozen=True)
class BenchTargets:
    """Where the bench finds its services."""

    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    postgres_admin_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _machines(scenario: Scenario, detector: str) -> list[str]:
    short = _SHORT.get(detector, detector).replace("_", "-")
    return [f"{short}-{i + 1}" for i in range(scenario.machines)]


class _Run:
    def __init__(self, box: Sandbox, scenario: Scenario, report: BenchReport, echo: Echo) -> None:
        self.box = box
        self.scenario = scenario
        self.report = report
        self.echo = echo
        self.settings = box.settings
        self.store = Store.open(self.settings.resolved_database_url, migrate=True)
        self.registry = MlflowRegistry.from_settings(self.settings)
        # the bench registers models itself: it claims the sandbox's MLflow store for the
        # sandbox's deployment first, as every process that uses a registry does
        identity = self.store.deployment.identity()
        self.registry.claim(
            identity.id,
            had_models=identity.had_models,
            database_url=self.settings.resolved_database_url,
        )
        self.versions: dict[str, dict[str, int]] = {}

    def pools(self, detector: str, batch_size: int) -> list[BodyPool]:
        return [
            BodyPool.build(machine, batch_size, seed=i)
            for i, machine in enumerate(_machines(self.scenario, detector))
        ]

    # phases ---------------------------------------------------------------------------
    def models(self) -> None:
        """Every machine gets a history and one champion version. Training is timed on a
        machine of its own (its repeats register versions, which would otherwise become
        challengers of a pipeline machine and be scored in shadow)."""
        spec = self.scenario.training
        for detector in self.scenario.detectors:
            self.echo(f"training {detector} models on {spec.readings:,} readings each")
            if "training" in self.scenario.phases:
                machine = f"{_machines(self.scenario, detector)[0]}-train"
                store_history(self.store, machine, spec.readings, seed=99)
                result = measure_training(
                    store=self.store,
                    registry=self.registry,
                    settings=self.settings.models,
                    detector=detector,
                    machine_id=machine,
                    readings=spec.readings,
                    repeats=spec.repeats,
                )
                self.report.training[detector] = result
                self.echo(
                    f"  first {result.first_s:.2f} s, warm median {result.warm_median_s:.2f} s"
                    f" (fit {result.fit_s:.3f} s)"
                )
            versions = self.versions.setdefault(detector, {})
            for i, machine in enumerate(_machines(self.scenario, detector)):
                store_history(self.store, machine, spec.readings, seed=100 + i)
                request = TrainRequest(machine_id=machine, detector=detector, min_readings=10)
                versions[machine] = train_machine(
                    request, store=self.store, registry=self.registry, settings=self.settings.models
                ).version

    def limits(self) -> None:
        spec = self.scenario.limits
        for detector in self.scenario.detectors:
            machine, version = next(iter(self.versions[detector].items()))
            model = self.registry.load(machine, version)
            for size in spec.scoring_batch_sizes:
                for _ in range(self.scenario.repeats):
                    limit = raw_scoring(model, size, spec.scoring_seconds)
                    self.report.scoring_limits.setdefault(detector, []).append(limit)
                self.echo(
                    f"raw scoring {detector} @{size}: "
                    f"{self.report.scoring_limit(detector, size):,.0f} rows/s"
                )
        pools = self.pools(self.scenario.detectors[0], self.scenario.batch_size)
        topology = Topology(f"{self.settings.broker.namespace}-raw")
        for _ in range(self.scenario.repeats):
            run = run_consumer_group(
                self.settings.broker.url,
                topology,
                pools,
                spec.rabbitmq_readings,
                mode="ack",
                processes=spec.rabbitmq_consumers,
                echo=self.echo,
                label="raw RabbitMQ",
            )
            self.report.rabbitmq_limit.append(run)
            self.echo(f"raw RabbitMQ publish+consume: {run.readings_per_s:,.0f} readings/s")

    def end_to_end(self) -> None:
        spec = self.scenario.stack
        options = StackOptions.of(spec)
        self.echo(
            f"starting the stack: {spec.ingest_processes} ingest, {spec.scorers} scorers, "
            f"1 worker with a pool of {spec.concurrency} ({spec.pool}), api; store {spec.store}"
        )
        probe = StoreProbe(self.store)
        before, readings_before = probe.storage_bytes(), probe.counts().readings
        with Stack(self.box, options) as stack:
            for detector in self.scenario.detectors:
                pools = self.pools(detector, self.scenario.batch_size)
                warm_up(stack, probe, pools, self.scenario.throughput.warmup_messages, self.echo)
                for _ in range(self.scenario.repeats):
                    if "throughput" in self.scenario.phases:
                        result = run_throughput(
                            stack,
                            probe,
                            pools,
                            self.scenario.throughput.readings,
                            detector=detector,
                            echo=self.echo,
                        )
                        self.report.throughput.setdefault(detector, []).append(result)
                        self.echo(
                            f"{detector} e2e: {result.readings_per_s:,.0f} readings/s over "
                            f"{result.readings:,} readings, lossless={result.lossless}"
                        )
                    if "latency" in self.scenario.phases:
                        self.latency(stack, probe, detector)
            stack.record_peaks()
            self.report.peak_rss_mb = stack.peaks()
        sizes = probe.storage_bytes()  # what the pipeline's readings added, with their scores
        if sizes is not None and before is not None:
            added = {table: sizes[table] - before[table] for table in sizes}
            readings = probe.counts().readings - readings_before
            self.report.storage = added | {"readings": readings}
            parts = ", ".join(
                f"{part} {size / max(readings, 1):.1f}" for part, size in added.items() if size
            )
            self.echo(
                f"storage: {self.report.storage_kb_per_1000():.1f} KB per 1,000 readings ({parts})"
            )

    def scaleout(self) -> None:
        """End-to-end throughput of the first detector with 1, 2, 4... scorer processes,
        each on a fresh stack. An untimed run first lets the scorers spread the busy
        partitions among themselves; the timed run follows."""
        spec, stack_spec = self.scenario.scaleout, self.scenario.stack
        detector = self.scenario.detectors[0]
        pools = self.pools(detector, self.scenario.batch_size)
        probe = StoreProbe(self.store)
        for scorers in spec.scorers:
            options = StackOptions.of(stack_spec, concurrency=1, scorers=scorers, api=False)
            with Stack(self.box, options) as stack:
                warm_up(stack, probe, pools, self.scenario.throughput.warmup_messages, self.echo)
                run_throughput(
                    stack, probe, pools, spec.readings, detector=detector, echo=self.echo
                )
                for _ in range(self.scenario.repeats):
                    result = run_throughput(
                        stack, probe, pools, spec.readings, detector=detector, echo=self.echo
                    )
                    self.report.scaleout.setdefault(scorers, []).append(result)
                    self.echo(
                        f"{detector} e2e with {scorers} scorer(s): "
                        f"{result.readings_per_s:,.0f} readings/s, lossless={result.lossless}"
                    )

    def latency(self, stack: Stack, probe: StoreProbe, detector: str) -> None:
        spec = self.scenario.latency
        for batch_size in spec.batch_sizes:
            result = run_latency(
                stack,
                probe,
                self.pools(detector, batch_size),
                rate=spec.rate,
                duration_s=spec.duration_s,
                detector=detector,
                echo=self.echo,
            )
            self.report.latency.setdefault(detector, []).append(result)
            self.echo(
                f"{detector} latency @{batch_size}/msg, ms: {result.percentiles_ms} "
                f"(scored {result.scored_rate:,.0f} readings/s of {spec.rate:,.0f} offered)"
            )

    def baselines(self) -> None:
        spec = self.scenario.baselines
        for detector in self.scenario.detectors:
            versions = self.versions[detector]
            machine, version = next(iter(versions.items()))
            for _ in range(self.scenario.repeats):
                for workers, clients in spec.serve_configs(os.cpu_count() or 1):
                    self.echo(
                        f"mlflow models serve baseline, {detector}, {workers} worker(s), "
                        f"{clients} clients"
                    )
                    served = mlflow_serve_baseline(
                        tracking_uri=self.settings.resolved_tracking_uri,
                        model_uri=f"models:/{self.registry.model_name(machine)}/{version}",
                        batch_size=self.scenario.batch_size,
                        readings=spec.readings,
                        workers=workers,
                        clients=clients,
                        log_path=self.box.directory / "mlflow-serve.log",
                    )
                    self.report.mlflow_serve.setdefault(detector, []).append(served)
                    self.echo(f"  {served.readings_per_s:,.0f} readings/s")
                plain = run_consumer_group(
                    self.settings.broker.url,
                    Topology(f"{self.settings.broker.namespace}-plain"),
                    self.pools(detector, self.scenario.batch_size),
                    spec.readings,
                    mode="score",
                    processes=spec.plain_consumers,
                    model=ModelRef(
                        self.settings.resolved_tracking_uri,
                        self.settings.models.registered_model_prefix,
                        self.settings.model_signing_key(),
                        dict(versions),
                    ),
                    echo=self.echo,
                    label=f"plain pika consumer {detector}",
                )
                self.report.plain_consumer.setdefault(detector, []).append(plain)
                self.echo(f"plain pika consumer {detector}: {plain.readings_per_s:,.0f} readings/s")

    def close(self) -> None:
        self.store.close()


def run_bench(
    settings: Settings,
    scenario: Scenario,
    *,
    targets: BenchTargets | None = None,
    echo: Echo = print,
) -> BenchReport:
    """Run ``scenario`` on a throw-away sandbox of the given services; nothing is left."""
    targets = targets or BenchTargets()
    base = settings.model_copy(
        update={
            "broker": settings.broker.model_copy(
                update={"predict_prefetch": scenario.stack.predict_prefetch}
            )
        }
    )
    report = BenchReport(scenario=scenario.model_dump(), store=scenario.stack.store)
    with sandbox(
        base,
        broker_url=targets.broker_url,
        store=scenario.stack.store,
        postgres_admin_url=targets.postgres_admin_url,
    ) as box:
        run = _Run(box, scenario, report, echo)
        try:
            run.models()
            if "limits" in scenario.phases:
                run.limits()
            if {"throughput", "latency"} & set(scenario.phases):
                run.end_to_end()
            if "scaleout" in scenario.phases:
                run.scaleout()
            if "baselines" in scenario.phases:
                run.baselines()
        finally:
            run.close()
    report.finished_at = datetime.now(UTC)
    report.environment_after = environment()
    return report
