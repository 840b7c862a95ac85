"""Replay a recorded CSV file (SKAB layout) as a machine.

The SKAB layout: ``;``-separated, a ``datetime`` column ``YYYY-MM-DD hh:mm:ss`` (naive,
taken as UTC), one column per sensor, and optional float 0/1 columns ``anomaly`` (the
ground truth) and ``changepoint``, which are never sensors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mmlw.schemas.readings import MACHINE_ID_PATTERN, SENSOR_PATTERN
from mmlw.workers.simulator.frame import Frame, epoch_us, utc_datetimes

__all__ = ["NON_SENSOR_COLUMNS", "CsvReplay"]

NON_SENSOR_COLUMNS: tuple[str, ...] = ("anomaly", "changepoint")


class CsvReplay:
    """A finite :class:`~mmlw.workers.simulator.frame.Source` reading a CSV file's rows in order.

    Guarantees, checked when constructed (the file is read once, then):

    - ``columns`` are the numeric sensor columns (or the given ``columns``), never the
      time column, the label column or ``anomaly``/``changepoint``; a header that is not
      a valid sensor name has its offending characters replaced by ``_``;
    - rows with a missing or non-finite sensor value or timestamp are dropped and counted
      in ``dropped_rows``; labels are 1 where the label column is > 0.5, and ``None``
      when the file has no such column;
    - timestamps are UTC (naive ones are taken as UTC); with ``start`` they are shifted
      so the first reading is at ``start``, keeping the spacing; with ``loop`` the file
      restarts after its last row, one typical step later, and never runs out;
    - a ``ValueError`` names the problem: missing time, label or requested column,
      unparseable timestamps, no numeric sensor column, no usable row, bad machine id.
    """

    def __init__(
        self,
        path: Path | str,
        machine_id: str | None = None,
        *,
        sep: str | None = None,
        time_column: str = "datetime",
        label_column: str | None = "anomaly",
        columns: Sequence[str] | None = None,
        start: datetime | None = None,
        loop: bool = False,
    ) -> None:
        self.path = Path(path)
        self.machine_id = _machine_id(self.path) if machine_id is None else machine_id
        if not re.fullmatch(MACHINE_ID_PATTERN, self.machine_id):
            raise ValueError(f"machine_id: {self.machine_id!r} does not match {MACHINE_ID_PATTERN}")
        self.loop = loop
        table = _read_table(self.path, sep)
        if time_column not in table.columns:
            raise ValueError(
                f"{self.path}: no time column {time_column!r} (columns: {list(table.columns)})"
            )
        excluded = {time_column, *NON_SENSOR_COLUMNS, *([label_column] if label_column else [])}
        sensors = _sensor_columns(table, excluded, columns, self.path)
        values = table[sensors].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        times = _epoch_micros(table[time_column], time_column, self.path)
        keep = np.isfinite(values).all(axis=1) & (times != _NAT)
        if not keep.any():
            raise ValueError(f"{self.path}: no row with a timestamp and all sensor values")
        self.dropped_rows = int((~keep).sum())
        self.columns = _unique_sensor_names(sensors, self.path)
        self._values = values[keep]
        self._times = times[keep]
        self._labels: np.ndarray | None = None
        if label_column is not None and label_column in table.columns:
            raw = pd.to_numeric(table[label_column], errors="coerce").to_numpy(np.float64)
            self._labels = (raw[keep] > 0.5).astype(np.int8)
        steps = np.diff(self._times)
        step = int(np.median(steps)) if len(steps) and np.median(steps) > 0 else 1_000_000
        self._cycle = int(self._times[-1] - self._times[0]) + step
        self._shift = 0 if start is None else epoch_us(start) - int(self._times[0])
        self._row = 0

    def __len__(self) -> int:
        """Usable rows in the file (after dropping)."""
        return len(self._values)

    @property
    def has_labels(self) -> bool:
        return self._labels is not None

    def read(self, n: int) -> Frame | None:
        """The next 1 to ``n`` rows (never past the file's end in one call), or ``None``
        when the file is used up and not looping."""
        if n < 1:
            raise ValueError("n: must be >= 1")
        if self._row == len(self):
            if not self.loop:
                return None
            self._row, self._shift = 0, self._shift + self._cycle
        rows = slice(self._row, min(self._row + n, len(self)))
        self._row = rows.stop
        labels = None if self._labels is None else self._labels[rows]
        stamps = utc_datetimes(self._times[rows] + self._shift)
        return Frame(self.machine_id, list(self.columns), stamps, self._values[rows], labels)


_NAT = np.iinfo(np.int64).min


def _machine_id(path: Path) -> str:
    """``<folder>-<stem>`` reduced to a valid machine id, e.g. ``valve1/3.csv -> valve1-3``."""
    raw = f"{path.resolve().parent.name}-{path.stem}" if path.resolve().parent.name else path.stem
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", raw).strip("-_")[:64]
    return cleaned or "replay"


def _read_table(path: Path, sep: str | None) -> pd.DataFrame:
    if sep is None:
        with path.open(encoding="utf-8-sig") as handle:
            header = handle.readline()
        sep = ";" if header.count(";") >= header.count(",") and ";" in header else ","
    table = pd.read_csv(path, sep=sep, encoding="utf-8-sig")
    table.columns = [str(name).strip() for name in table.columns]
    return table


def _sensor_columns(
    table: pd.DataFrame, excluded: set[str], wanted: Sequence[str] | None, path: Path
) -> list[str]:
    if wanted is not None:
        missing = [name for name in wanted if name not in table.columns]
        if missing:
            raise ValueError(f"{path}: no column(s) {missing} (columns: {list(table.columns)})")
        clash = [name for name in wanted if name in excluded]
        if clash:
            raise ValueError(f"{path}: {clash} are time/label columns, not sensors")
        if not wanted:
            raise ValueError(f"{path}: columns: name at least one sensor column")
        return list(wanted)
    sensors = [
        name
        for name in table.columns
        if name not in excluded
        and not name.startswith("Unnamed:")
        and pd.api.types.is_numeric_dtype(table[name])
        and not pd.api.types.is_bool_dtype(table[name])
    ]
    if not sensors:
        raise ValueError(f"{path}: no numeric sensor columns (columns: {list(table.columns)})")
    return sensors


def _epoch_micros(column: pd.Series, name: str, path: Path) -> np.ndarray:
    """Microseconds since the epoch, ``_NAT`` where the cell is empty."""
    try:
        moments = pd.to_datetime(column, utc=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: column {name!r}: cannot parse timestamps ({exc})") from None
    micros = (moments - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
    return micros.fillna(_NAT).to_numpy(np.int64)


def _unique_sensor_names(names: Sequence[str], path: Path) -> list[str]:
    cleaned = []
    for name in names:
        if re.fullmatch(SENSOR_PATTERN, name):
            cleaned.append(name)
            continue
        fixed = re.sub(r"[^A-Za-z0-9_ .()/%-]", "_", name)[:64]
        cleaned.append(fixed if re.match(r"[A-Za-z0-9_]", fixed) else f"_{fixed}"[:64])
    if len(set(cleaned)) != len(cleaned):
        raise ValueError(f"{path}: sensor names {cleaned} are not unique once made valid")
    return cleaned
