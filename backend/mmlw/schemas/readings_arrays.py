"""A readings batch as arrays, and the fast decoder of wire messages into it.

:class:`~mmlw.schemas.readings.ReadingsBatch` is the contract; validating a
1000-reading message into it builds a thousand ``datetime`` objects and eight thousand
floats that the store then turns back into arrays. :func:`decode_readings` goes from the
JSON body straight to :class:`ReadingsArrays` (orjson, numpy, one vectorized time parse)
for messages in the plain form publishers send, and hands every other body to the
contract's own validation, which decides and words the reason. The fast path accepts
only a subset of what the model accepts (canonical UUID text, ``...Z`` times, numbers as
numbers), so it never lets through a message the model would refuse, and what it
returns equals what the model gives (``tests/unit/test_readings_arrays.py`` checks both).

>>> body = ReadingsBatch.of_rows("pump-1", ["a", "b"], ["2026-11-22T10:00:00Z"],
...     [[1.0, 2.0]]).to_wire()
>>> arrays = decode_readings(body)
>>> arrays.machine_id, arrays.columns, arrays.values.tolist(), len(arrays)
('pump-1', ('a', 'b'), [[1.0, 2.0]], 1)
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import orjson
from pydantic import TypeAdapter

from mmlw.schemas.readings import (
    EARLIEST_TIME,
    LATEST_TIME,
    MACHINE_ID_PATTERN,
    MAX_MESSAGE_BYTES,
    READINGS_SCHEMA,
    SENSOR_PATTERN,
    ReadingsBatch,
    UtcDatetime,
    check_body,
    parse_readings_message,
)

__all__ = ["ReadingsArrays", "decode_readings"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_KEYS: Final = frozenset(
    {"schema", "message_id", "machine_id", "sent_at", "columns", "timestamps", "values", "labels"}
)
_REQUIRED: Final = frozenset({"schema", "machine_id", "columns", "timestamps", "values"})
_MACHINE = re.compile(MACHINE_ID_PATTERN)
_SENSOR = re.compile(SENSOR_PATTERN)
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")
# One UTC time as the publishers write it; the ranges are checked here, days past a
# month's end by the parser (which then refuses the whole list: the slow path words it).
_TIME = (
    r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?Z"
)
_TIMES = re.compile(rf"(?:{_TIME}\n)+")
_SENT_AT: Final = TypeAdapter(UtcDatetime)
_EARLIEST_US: Final = (EARLIEST_TIME - _EPOCH) // timedelta(microseconds=1)
_LATEST_US: Final = (LATEST_TIME - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True, eq=False)
class ReadingsArrays:
    """One machine's batch: ``values[i]`` is the reading at ``timestamps_us[i]``
    (microseconds since the Unix epoch, UTC), one column per sensor."""

    machine_id: str
    message_id: str
    columns: tuple[str, ...]
    timestamps_us: np.ndarray
    values: np.ndarray
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.timestamps_us)

    @property
    def t_start(self) -> datetime:
        return _EPOCH + timedelta(microseconds=int(self.timestamps_us.min()))

    @property
    def t_end(self) -> datetime:
        return _EPOCH + timedelta(microseconds=int(self.timestamps_us.max()))

    @classmethod
    def of(cls, batch: ReadingsBatch | ReadingsArrays) -> ReadingsArrays:
        """The arrays of a validated batch (a batch that already is arrays, as is)."""
        if isinstance(batch, ReadingsArrays):
            return batch
        import pandas as pd  # imported on use: commands that only list the store skip it

        times = pd.DatetimeIndex(batch.timestamps).as_unit("us").asi8
        return cls(
            machine_id=batch.machine_id,
            message_id=str(batch.message_id),
            columns=tuple(batch.columns),
            timestamps_us=np.asarray(times, dtype=np.int64),
            values=np.asarray(batch.values, dtype=np.float64).reshape(len(batch), -1),
            labels=None if batch.labels is None else np.asarray(batch.labels, dtype=np.int8),
        )


def decode_readings(
    body: bytes | str, max_readings: int | None = None, max_bytes: int | None = MAX_MESSAGE_BYTES
) -> ReadingsArrays:
    """The batch in a wire message, or :class:`~mmlw.errors.InvalidMessage` naming the
    field (with the same reasons as
    :func:`~mmlw.schemas.readings.parse_readings_message`); nothing else, whatever
    the body. A body longer than ``max_bytes``, or with more arrays and objects than a
    batch of ``max_readings`` readings, is refused unparsed."""
    check_body(body, max_bytes, max_readings)
    arrays = _fast(body, max_readings)
    if arrays is None:
        arrays = ReadingsArrays.of(parse_readings_message(body, max_readings, max_bytes))
    return arrays


def _fast(body: bytes | str, max_readings: int | None) -> ReadingsArrays | None:
    """The arrays of a plainly written valid message; None for anything else."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if (
        not isinstance(raw, dict)
        or not _REQUIRED <= raw.keys() <= _KEYS
        or raw["schema"] != READINGS_SCHEMA
    ):
        return None
    machine_id, message_id = raw["machine_id"], raw.get("message_id")
    if not isinstance(machine_id, str) or not _MACHINE.fullmatch(machine_id):
        return None
    if message_id is None:
        message_id = str(uuid.uuid4())
    elif isinstance(message_id, str) and _UUID.match(message_id):
        message_id = message_id.lower()
    else:
        return None
    columns = _columns(raw["columns"])
    times = _times(raw["timestamps"])
    if columns is None or times is None or (max_readings is not None and len(times) > max_readings):
        return None
    values = _values(raw["values"], len(times), len(columns))
    labels = None if raw.get("labels") is None else _labels(raw["labels"], len(times))
    if values is None or (labels is None and raw.get("labels") is not None):
        return None
    if "sent_at" in raw and not _valid_sent_at(raw["sent_at"]):
        return None
    return ReadingsArrays(machine_id, message_id, columns, times, values, labels)


def _columns(raw: Any) -> tuple[str, ...] | None:
    if not isinstance(raw, list) or not 1 <= len(raw) <= 256:
        return None
    if not all(isinstance(c, str) and _SENSOR.fullmatch(c) for c in raw) or len(set(raw)) != len(
        raw
    ):
        return None
    return tuple(raw)


def _times(raw: Any) -> np.ndarray | None:
    if not isinstance(raw, list) or not raw:
        return None
    try:
        text = "".join(raw)  # a TypeError unless every time is a string
    except TypeError:
        return None
    if set(map(len, raw)) == {len(_WHOLE_SECONDS)}:
        return _in_range(_whole_seconds(text, len(raw)))
    if not _TIMES.fullmatch("\n".join(raw) + "\n"):
        return None
    import pandas as pd  # imported on use: commands that only list the store skip it

    try:
        parsed = pd.to_datetime(raw, utc=True, format="ISO8601")
    except (ValueError, OverflowError):
        return None
    return _in_range(np.asarray(parsed.as_unit("us").asi8, dtype=np.int64))


def _in_range(times: np.ndarray | None) -> np.ndarray | None:
    """``times`` (microseconds) if every one is in the contract's range, else None."""
    if times is None or not ((times >= _EARLIEST_US) & (times < _LATEST_US)).all():
        return None
    return times


_WHOLE_SECONDS: Final = "YYYY-MM-DDTHH:MM:SSZ"
_DIGITS: Final = np.array([i for i, c in enumerate(_WHOLE_SECONDS) if c in "YMDHS"])
_SEPARATOR_AT: Final = np.array([i for i, c in enumerate(_WHOLE_SECONDS) if c in "-T:Z"])
_SEPARATORS: Final = np.frombuffer(
    "".join(c for c in _WHOLE_SECONDS if c in "-T:Z").encode(), dtype=np.uint8
)
# _FIELDS.T @ digits.T = year, month, day, hour, minute, second (rows); in float64,
# exact for these small integers and several times faster than an integer matmul
_FIELDS: Final = np.zeros((len(_DIGITS), 6))
_FIELDS[0:4, 0] = [1000, 100, 10, 1]
for _field in range(1, 6):
    _FIELDS[2 + 2 * _field : 4 + 2 * _field, _field] = [10, 1]


def _whole_seconds(joined: str, n: int) -> np.ndarray | None:
    """Microseconds of ``YYYY-MM-DDTHH:MM:SSZ`` times, parsed and range-checked as one
    byte matrix (a fifth of the time of a general parser); None if any is not a valid
    time of that form (the general path then decides). ``joined``: ``n`` such times
    written one after another."""
    try:
        text = joined.encode("ascii")
    except UnicodeEncodeError:
        return None
    chars = np.frombuffer(text, dtype=np.uint8).reshape(n, len(_WHOLE_SECONDS))
    digits = chars[:, _DIGITS] - np.uint8(ord("0"))  # below "0" wraps around to > 9
    if (digits > 9).any() or not (chars[:, _SEPARATOR_AT] == _SEPARATORS).all():
        return None
    year, month, day, hour, minute, second = (_FIELDS.T @ digits.T).astype(np.int64)
    if not (
        (year >= 1)
        & (month >= 1)
        & (month <= 12)
        & (day >= 1)
        & (hour <= 23)
        & (minute <= 59)
        & (second <= 59)
    ).all():
        return None
    # numpy's calendar (proleptic Gregorian): the first day of each month and its length
    months = ((year - 1970) * 12 + month - 1).astype("datetime64[M]")
    first_day = months.astype("datetime64[D]").astype(np.int64)
    month_days = (months + 1).astype("datetime64[D]").astype(np.int64) - first_day
    if not (day <= month_days).all():
        return None
    days = first_day + day - 1
    return (((days * 24 + hour) * 60 + minute) * 60 + second) * 1_000_000


def _values(raw: Any, n: int, width: int) -> np.ndarray | None:
    """Numbers only (the model also takes numeric strings: those go the slow way)."""
    if not isinstance(raw, list):
        return None
    try:
        values = np.array(raw)
    except (ValueError, OverflowError):  # ragged rows
        return None
    if values.shape != (n, width) or values.dtype.kind not in "fi":
        return None
    values = values.astype(np.float64, copy=False)
    return values if np.isfinite(values).all() else None


def _labels(raw: Any, n: int) -> np.ndarray | None:
    if not isinstance(raw, list) or len(raw) != n:
        return None
    try:
        labels = np.array(raw)
    except (ValueError, OverflowError):
        return None
    if labels.shape != (n,) or labels.dtype.kind not in "ib" or not np.isin(labels, (0, 1)).all():
        return None
    return labels.astype(np.int8)


def _valid_sent_at(raw: Any) -> bool:
    """Whether the model takes ``raw`` as ``sent_at`` (a string: numbers go the slow way)."""
    if not isinstance(raw, str):
        return False
    try:
        _SENT_AT.validate_python(raw)
    except ValueError:
        return False
    return True
