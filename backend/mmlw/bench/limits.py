"""The physical limits on this machine: how fast a loaded model scores in-process, and
how fast RabbitMQ moves the same messages with nothing done to them."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from mmlw.bench.payloads import SENSORS, sensor_values
from mmlw.detectors.model import AnomalyModel

__all__ = ["ScoringLimit", "raw_scoring"]


@dataclass(frozen=True)
class ScoringLimit:
    batch_size: int
    rows: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def raw_scoring(model: AnomalyModel, batch_size: int, seconds: float) -> ScoringLimit:
    """Score ready-made frames of ``batch_size`` readings (scores + per-sensor
    contributions, as a predict task does) for about ``seconds``, one thread."""
    values = sensor_values(batch_size, seed=99)
    index = pd.date_range("2026-01-01", periods=batch_size, freq="s", tz="UTC")
    frame = pd.DataFrame(values, columns=list(SENSORS), index=index)
    model.score(frame)
    rows = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        model.score(frame)
        rows += batch_size
    return ScoringLimit(batch_size, rows, elapsed)
