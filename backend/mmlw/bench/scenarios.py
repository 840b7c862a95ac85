"""What a bench run measures: one :class:`Scenario`, from a YAML file in ``bench/scenarios``.

The defaults are the measurements of the performance issue (1M readings end to end,
10k readings/s offered for latency, both baselines, the physical limits, training on
10k readings); the files only change counts and the shape of the stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SCENARIO_DIR",
    "BaselineSpec",
    "LatencySpec",
    "LimitsSpec",
    "Scenario",
    "StackSpec",
    "ThroughputSpec",
    "TrainingSpec",
    "load_scenario",
]

SCENARIO_DIR = Path(__file__).resolve().parents[3] / "bench" / "scenarios"

Phase = Literal["training", "limits", "throughput", "latency", "baselines", "scaleout"]
ALL_PHASES: tuple[Phase, ...] = (
    "training",
    "limits",
    "throughput",
    "latency",
    "baselines",
    "scaleout",
)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StackSpec(_Spec):
    store: Literal["postgresql", "sqlite"] = "postgresql"
    concurrency: int = Field(
        default=2, ge=1, description="Celery pool size (processes): training and backfills"
    )
    scorers: int = Field(
        default=2, ge=1, description="`mmlw scorer` processes: the scoring of live readings"
    )
    pool: Literal["prefork", "threads", "solo"] = "prefork"
    ingest_processes: int = Field(default=1, ge=1)
    ingest_prefetch: int = Field(default=256, ge=1)
    predict_prefetch: int = Field(default=4, ge=1)


class ScaleoutSpec(_Spec):
    scorers: list[int] = Field(
        default_factory=lambda: [1, 2, 4],
        min_length=1,
        description="scorer process counts, each on a stack of its own (first detector)",
    )
    readings: int = Field(default=500_000, ge=1, description="timed, after a settling run")


class ThroughputSpec(_Spec):
    readings: int = Field(default=1_000_000, ge=1)
    warmup_messages: int = Field(default=16, ge=0, description="scored before the clock starts")


class LatencySpec(_Spec):
    rate: float = Field(default=10_000, gt=0, description="offered readings/s, whole fleet")
    duration_s: float = Field(default=20, gt=0)
    batch_sizes: list[int] = Field(
        default_factory=lambda: [1000, 100], min_length=1, description="readings per message"
    )


class BaselineSpec(_Spec):
    readings: int = Field(default=300_000, ge=1)
    mlflow_serve_workers: int = Field(default=1, ge=1, description="uvicorn workers")
    mlflow_serve_per_core: bool = Field(
        default=True,
        description="also serve with one worker per CPU core (what one would run), with "
        "twice as many clients; ratios are against the better of the two",
    )
    http_clients: int = Field(default=2, ge=1, description="concurrent POSTing clients")

    def serve_configs(self, cores: int) -> list[tuple[int, int]]:
        """``(workers, clients)`` of each ``mlflow models serve`` baseline run.

        >>> BaselineSpec().serve_configs(2), BaselineSpec().serve_configs(1)
        ([(1, 2), (2, 4)], [(1, 2)])
        >>> BaselineSpec(mlflow_serve_per_core=False).serve_configs(8)
        [(1, 2)]
        """
        configs = [(self.mlflow_serve_workers, self.http_clients)]
        if self.mlflow_serve_per_core and cores != self.mlflow_serve_workers:
            configs.append((cores, max(self.http_clients, 2 * cores)))
        return configs

    plain_consumers: int = Field(default=2, ge=1, description="pika consumer processes")


class LimitsSpec(_Spec):
    scoring_batch_sizes: list[int] = Field(default_factory=lambda: [100, 1000])
    scoring_seconds: float = Field(default=2.0, gt=0, description="per detector and size")
    rabbitmq_readings: int = Field(default=1_000_000, ge=1)
    rabbitmq_consumers: int = Field(default=1, ge=1)


class TrainingSpec(_Spec):
    readings: int = Field(default=10_000, ge=10)
    repeats: int = Field(default=3, ge=1)


class Scenario(_Spec):
    name: str = "default"
    description: str = ""
    detectors: list[str] = Field(default_factory=lambda: ["pca", "isolation_forest"])
    machines: int = Field(default=4, ge=1)
    batch_size: int = Field(default=1000, ge=1, description="readings per message")
    phases: list[Phase] = Field(default_factory=lambda: list(ALL_PHASES))
    repeats: int = Field(default=1, ge=1, description="runs of each timed measurement")
    stack: StackSpec = Field(default_factory=StackSpec)
    throughput: ThroughputSpec = Field(default_factory=ThroughputSpec)
    latency: LatencySpec = Field(default_factory=LatencySpec)
    scaleout: ScaleoutSpec = Field(default_factory=ScaleoutSpec)
    baselines: BaselineSpec = Field(default_factory=BaselineSpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)

    def with_updates(self, **updates: object) -> Scenario:
        """A copy with dotted-path updates, e.g. ``{"throughput.readings": 10_000}``;
        values are validated like the file's."""
        data = self.model_dump()
        for path, value in updates.items():
            *parents, leaf = path.split(".")
            node = data
            for part in parents:
                node = node[part]
            node[leaf] = value
        return Scenario.model_validate(data)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A scenario by file path, or by name from :data:`SCENARIO_DIR` (``default`` = the
    built-in defaults when the file is missing)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        if str(name_or_path) == "default":
            return Scenario()
        raise ValueError(f"scenario: no file {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"scenario: {path} must hold a mapping")
    raw.setdefault("name", path.stem)
    return Scenario.model_validate(raw)
