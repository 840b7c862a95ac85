"""A range of readings as a stream of JSON chunks, and a bound on how many large ranges
are read at once.

A million-reading ``ReadingsOut`` built as Python objects and encoded in one piece takes
several hundred MB, and the framework validated and encoded it on the event loop, so a
few such reads at once blew past a GB and stalled ``/health`` for seconds. Encoding
:data:`CHUNK_ROWS` rows at a time straight from the arrays (orjson), in a worker thread,
keeps one read to its frame (about 100 MB at its peak for a million readings of four
sensors); :data:`LARGE_READS_AT_ONCE` bounds how many large frames exist at once (the
rest wait their turn, holding no data). One, not two: with two, ten readers of a million
readings each kept ``/health`` near a second on a loaded 2-core machine."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

import numpy as np
import orjson
import pandas as pd

__all__ = ["CHUNK_ROWS", "LARGE_READS_AT_ONCE", "LARGE_READ_ROWS", "stream_readings_json"]

CHUNK_ROWS: Final = 20_000
LARGE_READ_ROWS: Final = 100_000
"""A read that may return more rows than this waits for one of the large-read slots."""
LARGE_READS_AT_ONCE: Final = 1
_LARGE_READS = threading.BoundedSemaphore(LARGE_READS_AT_ONCE)

_NUMPY: Final = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z

Window = tuple[pd.DataFrame, "pd.Series[Any] | None"]


def stream_readings_json(
    machine_id: str, read_window: Callable[[], Window], *, large: bool
) -> Iterator[bytes]:
    """``ReadingsOut`` of the window ``read_window`` returns, as JSON chunks (times as
    ``...Z``, NaN as null), encoded from the arrays without a Python object per value.

    Nothing is read until the first chunk is asked for; a ``large`` read first waits
    for a slot and holds it until the last chunk is sent or the stream is closed (a
    client that goes away closes it), so an unstarted stream holds nothing."""
    slot = _LARGE_READS if large else None
    if slot is not None:
        slot.acquire()
    try:
        values, labels = read_window()
        n = len(values)
        yield b'{"machine_id":' + orjson.dumps(machine_id)
        yield b',"columns":' + orjson.dumps([str(c) for c in values.columns])
        times = pd.DatetimeIndex(values.index).as_unit("us").asi8.view("datetime64[us]")
        table = values.to_numpy(dtype=np.float64)
        yield from _array("timestamps", n, lambda rows: orjson.dumps(times[rows], option=_NUMPY))
        yield from _array(
            "values",
            n,
            lambda rows: orjson.dumps(np.ascontiguousarray(table[rows]), option=_NUMPY),
        )
        yield from _array("labels", n, lambda rows: orjson.dumps(_labels(labels, rows, n)))
        yield b"}"
    finally:
        if slot is not None:
            slot.release()


def _labels(labels: pd.Series[Any] | None, rows: slice, n: int) -> list[int | None]:
    """Stored labels are -1 where a batch had none: those are None."""
    if labels is None:
        return [None] * len(range(n)[rows])
    return [None if v < 0 else int(v) for v in labels.iloc[rows].to_numpy()]


def _array(name: str, n: int, encode: Callable[[slice], bytes]) -> Iterator[bytes]:
    """``,"name":[...]`` of ``n`` items, those of each :data:`CHUNK_ROWS` rows encoded
    apart."""
    yield f',"{name}":['.encode()
    for first in range(0, n, CHUNK_ROWS):
        items = encode(slice(first, first + CHUNK_ROWS))[1:-1]  # without its brackets
        yield (b"," + items) if first else items
    yield b"]"
