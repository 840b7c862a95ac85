"""The compact stored form of sensor values and score contributions.

**Values, losslessly in 0-4 bytes where the sensor's resolution allows.** Sensors report
a fixed number of decimals (SKAB's: 4-6 significant digits), and a reading that arrived
as the JSON text ``12.3456`` is the double nearest to 123456 / 10^4. A column whose
values are all such doubles for one scale ``d`` (0-9) with ``|k| < 2^31`` is stored as
integers ``k``: each column as its smallest ``k`` and every reading's offset from it,
all offsets of a batch in as few bytes as its widest range needs (0 when every sensor is
constant; 2-3 for the usual spread of a sensor at its resolution). Decoding divides
``k`` by ``10^d``, and IEEE division is correctly rounded, so it returns exactly the
double the reading was parsed to: the scores made from stored values are the scores of
the values sent. A batch with any column that has no such scale (full 17-digit doubles,
huge values) is stored as float64. Only the sign of a zero is not kept (``-0.0`` comes
back as ``0.0``).

The forms are told apart by length and first byte: ``8 n c`` bytes is float64 (the
other forms are never that long); a first byte :data:`_OFFSETS` is the offsets form
(the tag, ``c`` int8 scales, ``c`` int32 smallest ``k``, the width ``w`` in bytes, then
the ``n x c`` offsets as little-endian ``w``-byte integers; for ``w = 3`` their low 16
bits, then their high 8, so that no step needs a strided copy); anything else is the
earlier scaled form (``c`` int8 scales 0-9, then ``n x c`` int32 ``k``), still read.

**Reading times as deltas.** A batch's times (int64 microseconds) are stored as the
first and one step when they are evenly spaced (25 bytes: a tag, first, step, count),
else as the first and int32 differences when those fit (``5 + 4 n`` bytes), else as
int64 (``8 n`` bytes, the form before; the only one whose length is a multiple of 8).

**Contributions only where they matter.** Per-sensor contributions explain a reading
that an operator looks into: one above its threshold, or the worst of its batch (what the
dashboard shows for a moment and an alert names). Those rows are stored (float32, with
their row numbers); the others read back as NaN, "not explained".

>>> import numpy as np
>>> values = np.array([[12.3456, -0.5], [0.0001, 1e6]])
>>> data = pack_values(values)
>>> len(data), bool((unpack_values(data, 2, 2) == values).all())
(24, True)
>>> len(pack_values(np.array([[1 / 3]])))  # no decimal scale holds it: float64
8
"""

from __future__ import annotations

import numpy as np

from mmlw.store.packing import pack, unpack

__all__ = [
    "explained_rows",
    "pack_contributions",
    "pack_times",
    "pack_values",
    "unpack_contributions",
    "unpack_times",
    "unpack_values",
]

_MAX_SCALE = 9
_POWERS = 10.0 ** np.arange(_MAX_SCALE + 1)  # exact doubles
_LIMIT = 2.0**31 - 1  # rint() of anything below stays an int32
_OFFSETS = 0x80  # first byte of the offsets form (never a scale: those are 0-9)


def pack_values(values: np.ndarray) -> bytes:
    """``values`` (readings x columns) in the offsets form when every column has a decimal
    scale that holds it exactly, else as float64.

    >>> steady = np.full((100, 3), 21.5)  # three constant sensors: no bytes per reading
    >>> len(pack_values(steady)), len(pack_values(steady + np.arange(100)[:, None] / 10))
    (17, 317)
    """
    values = np.asarray(values, dtype=np.float64)
    scales = _scales(values) if values.size else None
    if scales is None:
        return pack(values, "f8")
    ints = np.rint(values * _POWERS[scales]).astype(np.int64)
    lowest = ints.min(axis=0)
    offsets = ints - lowest  # ints are int32: every range fits 32 bits
    width = (int(offsets.max()).bit_length() + 7) // 8
    head = bytes([_OFFSETS]) + scales.astype(np.int8).tobytes() + pack(lowest, "i4")
    if width == 3:  # two planes: the low 16 bits, then the high 8 (no strided copies)
        body = pack(offsets, "u2") + pack(offsets >> 16, "u1")
    else:
        body = pack(offsets, f"u{width}") if width else b""
    data = head + bytes([width]) + body
    return data + b"\0" if len(data) == 8 * values.size else data  # never float64's length


def unpack_values(data: bytes, n: int, columns: int) -> np.ndarray:
    """The float64 matrix ``pack_values`` stored (any form, also those written before)."""
    if len(data) == 8 * n * columns:
        return unpack(data, "f8", columns) if columns else np.zeros((n, 0))
    if data[0] != _OFFSETS:  # the earlier scaled int32 form
        scales = np.frombuffer(data[:columns], dtype=np.int8).astype(np.intp)
        return unpack(data[columns:], "i4", columns) / _POWERS[scales]
    scales = np.frombuffer(data, dtype=np.int8, count=columns, offset=1).astype(np.intp)
    lowest = np.frombuffer(data, dtype="<i4", count=columns, offset=1 + columns)
    width, at, cells = data[1 + 5 * columns], 2 + 5 * columns, n * columns
    if width == 3:
        ints = np.frombuffer(data, dtype="<u2", count=cells, offset=at).astype(np.int64)
        high = np.frombuffer(data, dtype=np.uint8, count=cells, offset=at + 2 * cells)
        ints |= high.astype(np.int64) << 16
    elif width:
        ints = np.frombuffer(data, dtype=f"<u{width}", count=cells, offset=at).astype(np.int64)
    else:
        ints = np.zeros(cells, dtype=np.int64)
    return (ints.reshape(n, columns) + lowest) / _POWERS[scales]


def _scales(values: np.ndarray) -> np.ndarray | None:
    """The smallest exact decimal scale of every column, or None if one has none."""
    columns = values.shape[1]
    scales = np.full(columns, -1, dtype=np.intp)
    todo = np.arange(columns)
    largest = np.abs(values).max(axis=0)
    for scale in range(_MAX_SCALE + 1):
        power = _POWERS[scale]
        if (largest[todo] * power >= _LIMIT).any():  # past int32 before it was exact
            return None
        part = values[:, todo]
        exact = (np.rint(part * power) / power == part).all(axis=0)
        scales[todo[exact]] = scale
        todo = todo[~exact]
        if not len(todo):
            return scales
    return None


_EVEN, _DELTAS = 1, 2  # tags of the compact forms of reading times
_INT32 = np.iinfo(np.int32)


def pack_times(times_us: np.ndarray) -> bytes:
    """A batch's reading times (int64 microseconds) in their smallest exact form.

    >>> even = np.arange(5, dtype=np.int64) * 1_000_000
    >>> [len(pack_times(t)) for t in (even, even + np.array([0, 0, 7, 0, 0]), even[:2])]
    [25, 25, 16]
    >>> all(np.array_equal(unpack_times(pack_times(t)), t) for t in (even, even[::-1] * 9**9))
    True
    """
    times = np.asarray(times_us, dtype=np.int64)
    if len(times) < 3:
        return pack(times, "i8")
    steps = np.diff(times)
    if (steps == steps[0]).all():
        return bytes([_EVEN]) + pack(np.array([times[0], steps[0], len(times)]), "i8")
    if steps.min() >= _INT32.min and steps.max() <= _INT32.max:
        return bytes([_DELTAS]) + pack(times[:1], "i8") + pack(steps, "i4")
    return pack(times, "i8")


def unpack_times(data: bytes) -> np.ndarray:
    """The int64 microseconds :func:`pack_times` stored (any form)."""
    if len(data) % 8 == 0:
        return unpack(data, "i8")
    if data[0] == _EVEN:
        start, step, count = (int(v) for v in unpack(data[1:25], "i8"))
        return start + step * np.arange(count, dtype=np.int64)
    first = unpack(data[1:9], "i8")
    steps = unpack(data[9:], "i4").astype(np.int64)
    return np.concatenate([first, first[0] + np.cumsum(steps)])


def explained_rows(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Row numbers whose contributions are kept: above ``threshold``, and the batch's
    worst row (the first, on ties)."""
    keep = scores > threshold
    if len(scores):
        keep[int(np.argmax(scores))] = True
    return np.flatnonzero(keep)


def pack_contributions(contributions: np.ndarray, rows: np.ndarray) -> tuple[bytes, bytes]:
    """(float32 contributions of ``rows``, the int32 row numbers)."""
    return pack(contributions[rows], "f4"), pack(rows, "i4")


def unpack_contributions(data: bytes, rows: bytes | None, n: int, columns: int) -> np.ndarray:
    """The readings x columns contributions, NaN on rows not kept (``rows`` None: every
    row was kept, the form before 0014)."""
    kept = unpack(data, "f4", columns)
    if rows is None:
        return kept
    dense = np.full((n, columns), np.nan, dtype=np.float32)
    dense[unpack(rows, "i4")] = kept
    return dense
