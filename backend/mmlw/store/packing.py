"""Arrays <-> bytes for the batch columns of the store (little-endian, C order)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

__all__ = ["datetime_to_us", "datetimes_to_us", "pack", "unpack", "us_to_datetimes"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def pack(array: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()


def unpack(data: bytes, dtype: str, columns: int | None = None) -> np.ndarray:
    array = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)
    return array.reshape(-1, columns) if columns else array


def datetimes_to_us(values: Sequence[datetime]) -> np.ndarray:
    """Microseconds since the Unix epoch for tz-aware datetimes (vectorized by pandas;
    a plain loop for dates outside its range on older pandas)."""
    import pandas as pd  # imported on use: commands that only list the store skip it

    try:
        return np.asarray(pd.to_datetime(values, utc=True).as_unit("us").asi8, dtype=np.int64)
    except (OverflowError, ValueError):  # OutOfBoundsDatetime is a ValueError
        return _datetimes_to_us_loop(values)


def datetime_to_us(value: datetime) -> int:
    """Microseconds since the Unix epoch of one tz-aware datetime."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def _datetimes_to_us_loop(values: Sequence[datetime]) -> np.ndarray:
    return np.fromiter((datetime_to_us(v) for v in values), dtype=np.int64, count=len(values))


def us_to_datetimes(values: np.ndarray) -> list[datetime]:
    return [_EPOCH + timedelta(microseconds=int(v)) for v in values]
