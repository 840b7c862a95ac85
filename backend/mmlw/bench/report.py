"""The bench's results: every run of every phase, the best of repeats with the spread,
ratios (ours / baseline, ours / limit), the issue's targets, a text table and JSON."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mmlw.bench.baselines import ServeResult
from mmlw.bench.consumer_runs import ConsumerRun
from mmlw.bench.e2e import LatencyResult, ThroughputResult
from mmlw.bench.limits import ScoringLimit
from mmlw.bench.training import TrainingResult
from mmlw.detectors.default import DEFAULT_DETECTOR

__all__ = ["BenchReport", "Target", "environment"]

_PACKAGES = ("mmlw", "celery", "kombu", "pika", "mlflow", "SQLAlchemy", "psycopg", "numpy")


def environment() -> dict[str, Any]:
    import os

    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    reached: str
    met: bool | None  # None: not measured in this run


def _target(name: str, goal: str, value: float | None, unit: str, met: bool) -> Target:
    if value is None:
        return Target(name, goal, "not measured", None)
    fmt = ",.0f" if abs(value) >= 100 else ".2f"
    return Target(name, goal, f"{format(value, fmt)}{unit}", met)


def _json_default(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        data = asdict(value)
        for name in ("readings_per_s", "rows_per_s", "lossless", "warm_median_s"):
            if hasattr(value, name):
                data[name] = getattr(value, name)
        return data
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


@dataclass
class BenchReport:
    scenario: dict[str, Any]
    store: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    environment_before: dict[str, Any] = field(default_factory=environment)
    environment_after: dict[str, Any] = field(default_factory=dict)
    training: dict[str, TrainingResult] = field(default_factory=dict)
    scoring_limits: dict[str, list[ScoringLimit]] = field(default_factory=dict)
    rabbitmq_limit: list[ConsumerRun] = field(default_factory=list)
    throughput: dict[str, list[ThroughputResult]] = field(default_factory=dict)
    scaleout: dict[int, list[ThroughputResult]] = field(default_factory=dict)  # by scorers
    latency: dict[str, list[LatencyResult]] = field(default_factory=dict)
    mlflow_serve: dict[str, list[ServeResult]] = field(default_factory=dict)
    plain_consumer: dict[str, list[ConsumerRun]] = field(default_factory=dict)
    peak_rss_mb: dict[str, dict[str, float]] = field(default_factory=dict)
    storage: dict[str, int] = field(default_factory=dict)  # bytes per table, and "readings"
    notes: list[str] = field(default_factory=list)

    # derived ------------------------------------------------------------------------
    def best_throughput(self, detector: str) -> float | None:
        runs = [r.readings_per_s for r in self.throughput.get(detector, []) if r.lossless]
        return max(runs) if runs else None

    def best_p99_ms(self, detector: str, batch_size: int) -> float | None:
        runs = [
            r.percentiles_ms["p99"]
            for r in self.latency.get(detector, [])
            if r.lossless and r.batch_size == batch_size
        ]
        return min(runs) if runs else None

    def storage_kb_per_1000(self) -> float | None:
        """KB on disk per 1,000 stored readings with their scores (every table of
        :data:`~mmlw.bench.probe.STORED_TABLES`, indexes included)."""
        readings = self.storage.get("readings", 0)
        if not readings:
            return None
        stored = sum(v for k, v in self.storage.items() if k != "readings")
        return stored / readings  # bytes per reading = KB per 1,000 readings

    def best_serve(self, detector: str) -> float | None:
        runs = [r.readings_per_s for r in self.mlflow_serve.get(detector, [])]
        return max(runs) if runs else None

    def best_plain(self, detector: str) -> float | None:
        runs = [r.readings_per_s for r in self.plain_consumer.get(detector, [])]
        return max(runs) if runs else None

    def scoring_limit(self, detector: str, batch_size: int) -> float | None:
        runs = [
            r.rows_per_s
            for r in self.scoring_limits.get(detector, [])
            if r.batch_size == batch_size
        ]
        return max(runs) if runs else None

    def best_rabbitmq(self) -> float | None:
        return max((r.readings_per_s for r in self.rabbitmq_limit), default=None)

    def ratios(self) -> dict[str, dict[str, float | None]]:
        batch_size = int(self.scenario["batch_size"])
        out: dict[str, dict[str, float | None]] = {}
        for detector in self.scenario["detectors"]:
            ours = self.best_throughput(detector)

            def ratio(other: float | None, ours: float | None = ours) -> float | None:
                return round(ours / other, 2) if ours and other else None

            out[detector] = {
                "vs_mlflow_serve": ratio(self.best_serve(detector)),
                "vs_plain_consumer": ratio(self.best_plain(detector)),
                "vs_raw_scoring": ratio(self.scoring_limit(detector, batch_size)),
                "vs_raw_rabbitmq": ratio(self.best_rabbitmq()),
            }
        return out

    def targets(self) -> list[Target]:
        """The issue's goals, each met, not met, or not measured by this run."""

        def at_least(name: str, value: float | None, goal: float, unit: str) -> Target:
            return _target(name, f">= {goal:,g}{unit}", value, unit, value is None or value >= goal)

        def below(name: str, value: float | None, goal: float, unit: str) -> Target:
            return _target(name, f"< {goal:,g}{unit}", value, unit, value is None or value < goal)

        def at_most(name: str, value: float | None, goal: float, unit: str) -> Target:
            return _target(name, f"<= {goal:,g}{unit}", value, unit, value is None or value <= goal)

        rate = float(self.scenario["latency"]["rate"])
        train = [t.warm_median_s for t in self.training.values()]
        targets = [
            at_least("PCA e2e, zero loss", self.best_throughput("pca"), 100_000, " readings/s"),
            at_least(
                "PCA e2e / mlflow serve",
                self.ratios().get("pca", {}).get("vs_mlflow_serve"),
                5,
                "x",
            ),
        ]
        for size in self.scenario["latency"]["batch_sizes"]:
            targets.append(
                at_most(
                    f"PCA p99 publish->stored at {rate:,.0f}/s, {size}/msg",
                    self.best_p99_ms("pca", int(size)),
                    500,
                    " ms",
                )
            )
        targets += [
            at_least(
                "Isolation Forest e2e, zero loss",
                self.best_throughput("isolation_forest"),
                50_000,
                " readings/s",
            ),
            at_least(
                f"default detector ({DEFAULT_DETECTOR}) e2e, zero loss",
                self.best_throughput(DEFAULT_DETECTOR),
                100_000,
                " readings/s",
            ),
            at_least(
                "level_change (streamed, stateful) e2e, zero loss",
                self.best_throughput("level_change"),
                100_000,
                " readings/s",
            ),
            below(
                "fit+log+register, 10k readings (warm median, slowest detector)",
                max(train) if train else None,
                1,
                " s",
            ),
            at_most(
                "storage per 1,000 readings with their scores (8 sensors)",
                self.storage_kb_per_1000(),
                60,
                " KB",
            ),
            below(
                "worker and scorer peak RSS (largest process)",
                max(
                    (
                        mb
                        for role in ("worker", "scorer")
                        if (mb := self.peak_rss_mb.get(role, {}).get("process_mb")) is not None
                    ),
                    default=None,
                ),
                400,
                " MB",
            ),
        ]
        return targets

    # output -------------------------------------------------------------------------
    def to_json(self) -> str:
        data = {k: v for k, v in self.__dict__.items()}
        data["ratios"] = self.ratios()
        data["targets"] = [asdict(t) for t in self.targets()]
        return json.dumps(data, default=_json_default, indent=2)

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        stamp = self.started_at.strftime("%Y%m%dT%H%M%SZ")
        path = directory / f"{stamp}-{self.scenario['name']}.json"
        path.write_text(self.to_json())
        return path

    def table(self) -> str:
        from mmlw.bench.table import render_report

        return render_report(self)
