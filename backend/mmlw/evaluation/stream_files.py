"""The rows of a benchmark's data file, as the file has them: its timestamps as text,
where each loaded row came from, and a detections file with one row per data row."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mmlw.evaluation.datasets import BenchmarkFile, Layout

__all__ = ["data_positions", "data_timestamps", "write_detections"]

_TIME_COLUMN: Mapping[str, str] = {"nab": "timestamp", "skab": "datetime"}
_SEPARATOR: Mapping[str, str] = {"nab": ",", "skab": ";"}


def data_timestamps(root: Path, file: BenchmarkFile, layout: Layout) -> list[str]:
    """The data file's timestamp column as text, one per data row, in file order."""
    path = root / f"{file.name}.csv"
    col = _TIME_COLUMN[layout]
    text = pd.read_csv(
        path, sep=_SEPARATOR[layout], usecols=[col], dtype=str, keep_default_na=False
    )
    return [str(t) for t in text[col]]


def data_positions(root: Path, file: BenchmarkFile, layout: Layout, n_data: int) -> np.ndarray:
    """For each of ``file``'s loaded rows, its row position in the data file.

    Mirrors :mod:`mmlw.evaluation.datasets` (rows with a missing value or time are
    dropped, the rest stably sorted by time) and checks the result against the loaded
    frame: ValueError if they differ."""
    raw = pd.read_csv(root / f"{file.name}.csv", sep=_SEPARATOR[layout])
    times = pd.DatetimeIndex(pd.to_datetime(raw.pop(_TIME_COLUMN[layout]), errors="coerce"))
    sensors = raw.drop(columns=[c for c in ("anomaly", "changepoint") if c in raw.columns])
    values = sensors.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    keep = np.flatnonzero(values.notna().all(axis=1).to_numpy() & times.notna())
    stamps = times.as_unit("ns").asi8
    positions = keep[np.argsort(stamps[keep], kind="stable")]
    same = (
        len(raw) == n_data
        and len(positions) == len(file.frame)
        and list(values.columns) == [str(c) for c in file.frame.columns]
        and bool(np.array_equal(stamps[positions], file.frame.index.asi8))
        and bool(np.array_equal(values.to_numpy()[positions], file.frame.to_numpy(np.float64)))
    )
    if not same:
        raise ValueError(f"{file.name}: loaded rows do not match the data file's rows")
    return positions


def write_detections(
    path: Path, timestamps: list[str], positions: np.ndarray, detections: np.ndarray
) -> None:
    """``timestamp,anomaly_score`` per data row, in the data file's order; row
    ``positions[i]`` of the data file gets ``detections[i]``, every other row 0."""
    score = np.zeros(len(timestamps), dtype=np.int8)
    score[positions] = detections
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"timestamp": timestamps, "anomaly_score": score})
    frame.to_csv(path, index=False, lineterminator="\n")
