"""A time range of stored readings (``reading_batches`` rows), read back: decoded into
one frame, or only counted.

Batches cover spans of time and may arrive out of order, so a range cuts some batches
at its edges: those are decoded and cut; the batches wholly inside are taken whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Table, func, or_, select
from sqlalchemy.engine import Connection

from mmlw.store.compact import unpack_times, unpack_values
from mmlw.store.packing import datetimes_to_us
from mmlw.store.tables import readings_of

if TYPE_CHECKING:
    import pandas as pd

    from mmlw.store.readings import StoredBatch

__all__ = ["aligned_window", "count_in_range", "stacked_window"]


def count_in_range(
    connection: Connection,
    batches: Table,
    readings: Table,
    where: Sequence[Any],
    start: datetime | None,
    end: datetime | None,
) -> int:
    """Readings in ``[start, end)`` of the rows of ``batches`` matching ``where``: SUM(n)
    over the batches wholly inside, plus the readings in range of the batches across an
    edge, decoded. ``batches`` has ``t_start``, ``t_end`` (first and last reading) and
    ``n``; the reading times are in ``readings`` (``reading_batches``: ``batches`` itself,
    or joined on ``batches.batch_id``)."""
    inside, overlapping, across = list(where), list(where), []
    if start is not None:
        inside.append(batches.c.t_start >= start)
        overlapping.append(batches.c.t_end >= start)
        across.append(batches.c.t_start < start)
    if end is not None:
        inside.append(batches.c.t_end < end)
        overlapping.append(batches.c.t_start < end)
        across.append(batches.c.t_end >= end)
    total = int(
        connection.scalar(select(func.coalesce(func.sum(batches.c.n), 0)).where(*inside)) or 0
    )
    if not across:
        return total
    edges = select(readings.c.timestamps_us).where(*overlapping, or_(*across))
    if readings is not batches:
        edges = edges.join_from(batches, readings, readings_of(batches.c, readings.c))
    lo = None if start is None else int(datetimes_to_us([start])[0])
    hi = None if end is None else int(datetimes_to_us([end])[0])
    for (packed,) in connection.execute(edges):
        times = unpack_times(packed)
        keep = np.ones(len(times), dtype=bool)
        if lo is not None:
            keep &= times >= lo
        if hi is not None:
            keep &= times < hi
        total += int(keep.sum())
    return total


def stacked_window(
    rows: Sequence[Any],
    start: datetime | None,
    end: datetime | None,
    last_n: int | None,
) -> tuple[pd.DataFrame, pd.Series | None]:
    """:meth:`ReadingsRepository.window` of stored batches (``reading_batches`` rows)
    with the same columns: decoded straight into one array (one sensor per row, as
    pandas keeps it, so each column is contiguous), one frame over it."""
    import pandas as pd  # imported on use: commands that only list the store skip it

    columns = list(rows[0].columns)
    stamps = [unpack_times(r.timestamps_us) for r in rows]
    times = np.concatenate(stamps)
    bounds = np.concatenate([[0], np.cumsum([len(t) for t in stamps])])
    values = np.empty((len(columns), bounds[-1]), dtype=np.float64)
    labels = (
        np.full(bounds[-1], -1, dtype=np.int8) if any(r.labels is not None for r in rows) else None
    )
    for row, first, last in zip(rows, bounds[:-1], bounds[1:], strict=True):
        values[:, first:last] = unpack_values(row.values, last - first, len(columns)).T
        if labels is not None and row.labels is not None:
            labels[first:last] = np.frombuffer(row.labels, dtype="<i1")
    lo, hi = 0, len(times)
    keep: slice | np.ndarray = slice(lo, hi)
    if np.all(times[1:] >= times[:-1]):  # the usual case: batches in time order
        if start is not None:
            lo = int(np.searchsorted(times, datetimes_to_us([start])[0], side="left"))
        if end is not None:
            hi = max(lo, int(np.searchsorted(times, datetimes_to_us([end])[0], side="left")))
        newest = range(lo, hi)[-last_n:] if last_n is not None else range(lo, hi)
        keep = slice(newest.start, newest.stop)
    else:
        order = np.argsort(times, kind="stable")
        inside = np.ones(len(order), dtype=bool)
        if start is not None:
            inside &= times[order] >= datetimes_to_us([start])[0]
        if end is not None:
            inside &= times[order] < datetimes_to_us([end])[0]
        keep = order[inside][-last_n:] if last_n is not None else order[inside]
    index = pd.DatetimeIndex(times[keep].view("datetime64[us]")).tz_localize("UTC")
    frame = pd.DataFrame(values[:, keep].T, columns=columns, index=index, copy=False)
    if labels is None:
        return frame, None
    return frame, pd.Series(labels[keep], index=index)


def aligned_window(
    batches: Sequence[StoredBatch],
    start: datetime | None,
    end: datetime | None,
    last_n: int | None,
) -> tuple[pd.DataFrame, pd.Series | None]:
    """:meth:`ReadingsRepository.window` of batches whose columns differ: aligned by name
    (a sensor missing in a batch is NaN)."""
    import pandas as pd  # imported on use: commands that only list the store skip it

    frames = [b.frame() for b in batches]
    values = pd.concat(frames).sort_index(kind="stable")
    has_labels = any(b.labels is not None for b in batches)
    labels = None
    if has_labels:
        parts = [
            pd.Series(
                b.labels if b.labels is not None else np.full(len(b.timestamps_us), -1),
                index=f.index,
            )
            for b, f in zip(batches, frames, strict=True)
        ]
        labels = pd.concat(parts).sort_index(kind="stable").astype("int8")
    mask = np.ones(len(values), dtype=bool)
    if start is not None:
        mask &= values.index >= pd.Timestamp(start)
    if end is not None:
        mask &= values.index < pd.Timestamp(end)
    values = values[mask]
    labels = labels[mask] if labels is not None else None
    if last_n is not None:
        values = values.iloc[-last_n:]
        labels = labels.iloc[-last_n:] if labels is not None else None
    return values, labels
