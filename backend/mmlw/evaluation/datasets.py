"""Loading labelled benchmark folders (SKAB or NAB layout) into :class:`BenchmarkFile`.

Layouts (auto-detected by :func:`detect_layout`):

* **SKAB**: CSVs anywhere under the folder, ``;``-separated, a ``datetime`` column, sensor
  columns and 0/1 ``anomaly`` (required) and ``changepoint`` (optional) columns. Files
  without an ``anomaly`` column (e.g. ``anomaly-free.csv``) are skipped.
* **NAB**: ``timestamp,value`` CSVs plus one labels ``*.json`` at the folder root mapping a
  file's relative path to a list of ``[start, end]`` anomaly windows. ``anomaly`` is 1 for
  rows with ``start <= timestamp <= end``; ``changepoint`` is 1 at the first row of each
  window (the first row with ``timestamp >= start`` that is inside the window). CSVs not
  named in the labels file are skipped.

Guarantees: files come back in natural path order (``valve1/2`` before ``valve1/10``);
each frame has a sorted ``DatetimeIndex`` and float64 sensor columns without NaN (rows
with missing sensor values are dropped, with their labels).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["BenchmarkFile", "Dataset", "detect_layout", "group_of", "load_dataset"]

Layout = Literal["skab", "nab"]
LABEL_COLUMNS = ("anomaly", "changepoint")
SKAB_SENSORS = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)


def group_of(name: str) -> str:
    """The group (NAB: category) of a file's relative path: its first folder, "." if none.

    >>> group_of("valve1/0"), group_of("realTweets/Twitter_volume_KO.csv"), group_of("x")
    ('valve1', 'realTweets', '.')
    """
    return name.split("/")[0] if "/" in name else "."


@dataclass(frozen=True)
class BenchmarkFile:
    """One labelled recording: sensors indexed by time, and 0/1 labels per row."""

    name: str  # relative posix path without the .csv suffix, e.g. "valve1/0"
    frame: pd.DataFrame
    anomaly: np.ndarray  # int8, len(frame)
    changepoint: np.ndarray  # int8, len(frame)


@dataclass(frozen=True)
class Dataset:
    """A loaded folder: its layout and its labelled files (never empty)."""

    root: Path
    layout: Layout
    files: list[BenchmarkFile]

    @property
    def is_skab(self) -> bool:
        """SKAB layout *and* SKAB's eight sensor columns (then the leaderboard applies)."""
        return self.layout == "skab" and all(
            set(f.frame.columns) == set(SKAB_SENSORS) for f in self.files
        )


def _natural_key(path: Path) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", path.as_posix())]


def _csvs(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*.csv") if p.is_file()), key=_natural_key)


def _header(path: Path) -> str:
    with path.open(encoding="utf-8", errors="replace") as fh:
        return fh.readline().strip().lower()


def detect_layout(root: Path) -> Layout:
    """``"nab"`` if the root holds a labels JSON and ``timestamp,value`` CSVs, else ``"skab"``."""
    csvs = _csvs(root)
    if any(root.glob("*.json")) and csvs and _header(csvs[0]).startswith("timestamp,"):
        return "nab"
    return "skab"


def _check_root(root: Path) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"dataset: {root} is not a folder")
    if not _csvs(root):
        raise ValueError(f"dataset: no CSV files under {root}")
    return root


def _name(root: Path, path: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def _finish(name: str, frame: pd.DataFrame, anomaly: np.ndarray, cp: np.ndarray) -> BenchmarkFile:
    sensors = frame.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    keep = sensors.notna().all(axis=1).to_numpy() & frame.index.notna()
    sensors = sensors[keep]
    sensors.index = pd.DatetimeIndex(sensors.index).as_unit("ns")
    order = np.argsort(sensors.index.to_numpy(), kind="stable")
    return BenchmarkFile(
        name=name,
        frame=sensors.iloc[order],
        anomaly=anomaly[keep][order].astype(np.int8),
        changepoint=cp[keep][order].astype(np.int8),
    )


def _load_skab_file(root: Path, path: Path) -> BenchmarkFile | None:
    raw = pd.read_csv(path, sep=";")
    if "datetime" not in raw.columns or "anomaly" not in raw.columns:
        return None
    index = pd.DatetimeIndex(pd.to_datetime(raw.pop("datetime"), errors="coerce"), name="datetime")
    anomaly = (raw.pop("anomaly").fillna(0).to_numpy(dtype=np.float64) > 0.5).astype(np.int8)
    if "changepoint" in raw.columns:
        cp = (raw.pop("changepoint").fillna(0).to_numpy(dtype=np.float64) > 0.5).astype(np.int8)
    else:
        cp = np.zeros(len(raw), dtype=np.int8)
    raw.index = index
    return _finish(_name(root, path), raw, anomaly, cp)


def _load_nab_labels(root: Path) -> dict[str, list[list[str]]]:
    labels: dict[str, list[list[str]]] = {}
    for path in sorted(root.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"dataset: {path.name} must map file paths to window lists")
        labels.update({str(k).replace("\\", "/"): v for k, v in data.items()})
    return labels


def _load_nab_file(root: Path, path: Path, windows: list[list[str]]) -> BenchmarkFile:
    raw = pd.read_csv(path)
    if "timestamp" not in raw.columns:
        raise ValueError(f"dataset: {path.relative_to(root)} has no 'timestamp' column")
    times = pd.DatetimeIndex(pd.to_datetime(raw.pop("timestamp"), errors="coerce"), name="datetime")
    raw.index = times
    t = times.as_unit("ns").asi8
    anomaly = np.zeros(len(raw), dtype=np.int8)
    cp = np.zeros(len(raw), dtype=np.int8)
    for window in windows:
        if len(window) != 2:
            raise ValueError(f"dataset: window {window!r} for {path.name} is not [start, end]")
        start, end = (pd.Timestamp(w).value for w in window)
        inside = (t >= start) & (t <= end)
        anomaly[inside] = 1
        if inside.any():
            cp[int(np.argmax(inside))] = 1
    return _finish(_name(root, path), raw, anomaly, cp)


def load_dataset(root: Path | str, layout: Layout | None = None) -> Dataset:
    """Every labelled file under ``root``; ValueError if the folder is missing or has none."""
    root = _check_root(Path(root))
    layout = layout or detect_layout(root)
    files: list[BenchmarkFile] = []
    if layout == "nab":
        labels = _load_nab_labels(root)
        for path in _csvs(root):
            rel = path.relative_to(root).as_posix()
            windows = labels.get(rel, labels.get(path.name))
            if windows is not None:
                files.append(_load_nab_file(root, path, windows))
    else:
        for path in _csvs(root):
            loaded = _load_skab_file(root, path)
            if loaded is not None:
                files.append(loaded)
    files = [f for f in files if len(f.frame)]
    if not files:
        raise ValueError(f"dataset: no labelled files under {root} ({layout} layout)")
    return Dataset(root=root, layout=layout, files=files)
