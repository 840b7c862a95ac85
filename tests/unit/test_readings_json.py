"""The streamed readings body is the JSON of ``ReadingsOut`` byte for byte, however many
chunks it is encoded in, and a large read's slot is held only while a stream runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mmlw.api import readings_json
from mmlw.api.readings_json import LARGE_READS_AT_ONCE, stream_readings_json
from mmlw.schemas.resources import ReadingsOut

Window = tuple[pd.DataFrame, "pd.Series[Any] | None"]


def _window(n: int, with_labels: bool) -> Window:
    rng = np.random.default_rng(3)
    index = pd.DatetimeIndex(
        pd.Timestamp("2026-01-01T00:00:00Z") + pd.to_timedelta(np.arange(n) * 1_500, unit="ms")
    ).as_unit("ns")
    values = pd.DataFrame(rng.normal(size=(n, 3)) * 1e-6, index=index, columns=["a", "b", "c d"])
    values.iloc[::7, 1] = np.nan  # a sensor a batch lacked
    labels = pd.Series(rng.integers(-1, 2, size=n), index=index, dtype="int8")
    return values, labels if with_labels else None


def _expected(machine_id: str, window: Window) -> bytes:
    values, labels = window
    out = ReadingsOut(
        machine_id=machine_id,
        columns=[str(c) for c in values.columns],
        timestamps=list(values.index.to_pydatetime()) if len(values) else [],
        values=values.astype(object).where(values.notna(), None).to_numpy().tolist(),
        labels=[None] * len(values)
        if labels is None
        else [None if v < 0 else int(v) for v in labels.to_numpy()],
    )
    return out.model_dump_json().encode()


@pytest.mark.parametrize("n", [0, 1, 9, 10, 11, 25])
@pytest.mark.parametrize("with_labels", [True, False])
def test_the_stream_is_the_json_of_readings_out(
    monkeypatch: pytest.MonkeyPatch, n: int, with_labels: bool
) -> None:
    monkeypatch.setattr(readings_json, "CHUNK_ROWS", 10)
    window = _window(n, with_labels) if n else (pd.DataFrame(), None)
    body = b"".join(stream_readings_json("pump-1", lambda: window, large=False))
    assert body == _expected("pump-1", window)


def _slots_free() -> int:
    taken = 0
    while readings_json._LARGE_READS.acquire(blocking=False):
        taken += 1
    for _ in range(taken):
        readings_json._LARGE_READS.release()
    return taken


def test_a_large_read_holds_a_slot_while_it_streams_and_frees_it_when_closed() -> None:
    reads: list[int] = []
    window = _window(30, True)

    def read() -> Window:
        reads.append(1)
        return window

    unstarted = stream_readings_json("m", read, large=True)
    assert _slots_free() == LARGE_READS_AT_ONCE and not reads  # nothing held or read yet
    started = stream_readings_json("m", read, large=True)
    next(started)
    assert _slots_free() == LARGE_READS_AT_ONCE - 1 and reads == [1]
    started.close()  # what a client going away comes to
    assert _slots_free() == LARGE_READS_AT_ONCE
    del unstarted


def test_a_failing_read_frees_its_slot() -> None:
    def fail() -> Window:
        raise RuntimeError("database gone")

    with pytest.raises(RuntimeError):
        next(stream_readings_json("m", fail, large=True))
    assert _slots_free() == LARGE_READS_AT_ONCE


def test_small_reads_take_no_slot() -> None:
    read: Callable[[], Window] = lambda: _window(5, False)  # noqa: E731
    stream = stream_readings_json("m", read, large=False)
    next(stream)
    assert _slots_free() == LARGE_READS_AT_ONCE
    stream.close()
