"""Arrays <-> bytes for the batch columns of the store (little-endian, C order)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

__all__ = ["datetimes_to_us", "pack", "unpack", "us_to_datetimes"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def pack(array: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()


def unpack(data: bytes, dtype: str, columns: int | None = None) -> np.ndarray:
    array = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
    return array.reshape(-1, columns) if columns else array


def datetimes_to_us(values: Sequence[datetime]) -> np.ndarray:
    """Microseconds since the Unix epoch for tz-aware datetimes (vectorized by pandas;
    a plain loop for dates outside its range on older pandas)."""
    try:
        return np.asarray(pd.to_datetime(values, utc=True).as_unit("us").asi8, dtype=np.int64)
    except (OverflowError, ValueError):  # OutOfBoundsDatetime is a ValueError
        return _datetimes_to_us_loop(values)


def _datetimes_to_us_loop(values: Sequence[datetime]) -> np.ndarray:
    return np.fromiter(
        ((v - _EPOCH) // np.timedelta64(1, "us").item() for v in values),
        dtype=np.int64,
        count=len(values),
    )


def us_to_datetimes(values: np.ndarray) -> list[datetime]:
    return [_EPOCH + timedelta(microseconds=int(v)) for v in values]
