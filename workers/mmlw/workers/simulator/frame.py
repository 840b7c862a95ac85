"""A block of consecutive readings of one machine, and the protocol of what yields them.

>>> from datetime import UTC, datetime
>>> frame = Frame("pump-1", ["a", "b"], utc_series(datetime(2026, 1, 1, tzinfo=UTC), 1.0, 0, 2),
...               np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0, 1]))
>>> len(frame), frame.to_batch().labels
(2, [0, 1])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from mmlw.schemas.readings import ReadingsBatch

__all__ = ["Frame", "Source", "as_utc", "epoch_us", "utc_datetimes", "utc_series"]


@dataclass(frozen=True, eq=False)
class Frame:
    """At least one consecutive reading of one machine.

    Construction guarantees: ``values`` is a float64 array of shape ``(n, len(columns))``
    with every entry finite, ``n == len(timestamps) >= 1``, every timestamp is timezone
    aware, and ``labels`` is ``None`` or an int8 array of shape ``(n,)`` holding only 0/1.
    """

    machine_id: str
    columns: list[str]
    timestamps: list[datetime]
    values: np.ndarray
    labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.timestamps)
        if n == 0:
            raise ValueError("timestamps: a frame holds at least one reading")
        values = np.asarray(self.values, dtype=np.float64)
        if values.shape != (n, len(self.columns)):
            raise ValueError(f"values: shape {values.shape}, expected ({n}, {len(self.columns)})")
        if not np.isfinite(values).all():
            raise ValueError("values: every value must be finite")
        if self.timestamps[0].tzinfo is None or self.timestamps[-1].tzinfo is None:
            raise ValueError("timestamps: must be timezone aware")
        object.__setattr__(self, "values", values)
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.shape != (n,) or not np.isin(labels, (0, 1)).all():
                raise ValueError(f"labels: expected {n} values of 0/1")
            object.__setattr__(self, "labels", labels.astype(np.int8))

    def __len__(self) -> int:
        return len(self.timestamps)

    def to_batch(self) -> ReadingsBatch:
        """The same readings as a validated wire batch (timestamps in UTC)."""
        return ReadingsBatch.model_validate(
            {
                "machine_id": self.machine_id,
                "columns": list(self.columns),
                "timestamps": list(self.timestamps),
                "values": self.values.tolist(),
                "labels": None if self.labels is None else self.labels.tolist(),
            }
        )


@runtime_checkable
class Source(Protocol):
    """A machine whose readings can be read in order, block by block."""

    machine_id: str
    columns: list[str]

    def read(self, n: int) -> Frame | None:
        """The next 1 to ``n`` readings, or ``None`` once there are no more."""
        ...


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def epoch_us(moment: datetime) -> int:
    """Whole microseconds since the Unix epoch (naive = UTC)."""
    delta = as_utc(moment) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def utc_datetimes(micros: np.ndarray) -> list[datetime]:
    """Aware UTC datetimes for an array of microseconds since the Unix epoch."""
    index = pd.to_datetime(np.asarray(micros, dtype=np.int64), unit="us", utc=True)
    return list(index.to_pydatetime())


def utc_series(start: datetime, period_s: float, first: int, n: int) -> list[datetime]:
    """Timestamps of readings ``first .. first + n - 1`` taken every ``period_s`` from
    ``start`` (reading 0), rounded to the microsecond."""
    offsets = np.rint(np.arange(first, first + n) * (period_s * 1e6)).astype(np.int64)
    return utc_datetimes(epoch_us(start) + offsets)
