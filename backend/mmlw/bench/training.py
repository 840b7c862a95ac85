"""Training cost: a machine's stored history -> fit -> threshold -> MLflow log + register.

The first call in a process also pays for ``import mlflow`` and the MLflow store's first
use; it is reported apart from the steady-state (warm) calls.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from mmlw.bench.payloads import training_frame
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas import ReadingsBatch, TrainRequest
from mmlw.services.training import train_machine
from mmlw.settings import ModelSettings
from mmlw.store import Store

__all__ = ["TrainingResult", "measure_training", "store_history"]


@dataclass(frozen=True)
class TrainingResult:
    detector: str
    readings: int
    first_s: float
    warm_s: list[float]
    fit_s: float
    version: int

    @property
    def warm_median_s(self) -> float:
        return statistics.median(self.warm_s) if self.warm_s else self.first_s


def store_history(store: Store, machine_id: str, readings: int, seed: int) -> None:
    """Store ``readings`` past readings of a machine, 1000 per batch."""
    frame = training_frame(readings, seed)
    for first in range(0, readings, 1000):
        part = frame.iloc[first : first + 1000]
        store.readings.add(
            ReadingsBatch.of_rows(
                machine_id, list(part.columns), list(part.index.to_pydatetime()), part.to_numpy()
            )
        )


def measure_training(
    *,
    store: Store,
    registry: MlflowRegistry,
    settings: ModelSettings,
    detector: str,
    machine_id: str,
    readings: int,
    repeats: int,
) -> TrainingResult:
    """Train ``1 + repeats`` times on the machine's last ``readings`` readings; the first
    version becomes the machine's champion."""
    request = TrainRequest(
        machine_id=machine_id, detector=detector, last_n=readings, min_readings=10
    )
    times: list[float] = []
    fit_times: list[float] = []
    version = 0
    for _ in range(1 + repeats):
        started = time.perf_counter()
        result = train_machine(request, store=store, registry=registry, settings=settings)
        times.append(time.perf_counter() - started)
        fit_times.append(float(result.metrics["fit_time_s"]))
        version = version or result.version
    return TrainingResult(
        detector=detector,
        readings=readings,
        first_s=times[0],
        warm_s=times[1:],
        fit_s=statistics.median(fit_times),
        version=version,
    )
