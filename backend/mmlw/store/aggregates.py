"""Per-bucket aggregates of readings and scores: what a rollup holds, computed from raw
batches (by the rollup run, and by reads for batches not rolled up yet).

Both work on column frames (pandas), one row per (machine, sensor or role, period,
bucket), so that aggregates of many batches merge with one group-by: counts and sums
add, minima and maxima take the extreme, and a score extreme keeps the time (and, for
the maximum, the threshold and model version) of the reading that holds it. Buckets are
``bucket_us`` microseconds since the epoch, a multiple of the period.

>>> import numpy as np
>>> frame = reading_aggregates(
...     [("m", ["a"], np.array([0, 30_000_000, 60_000_000]), np.array([[1.0], [3.0], [5.0]]))],
...     periods=(60,),
... )
>>> frame[["bucket_us", "n", "total", "minimum", "maximum"]].to_numpy().tolist()
[[0.0, 2.0, 4.0, 1.0, 3.0], [60000000.0, 1.0, 5.0, 5.0, 5.0]]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "HOUR",
    "MINUTE",
    "PERIODS",
    "READING_KEYS",
    "SCORE_KEYS",
    "ReadingsPart",
    "ScoresPart",
    "merge_readings",
    "merge_scores",
    "reading_aggregates",
    "score_aggregates",
]

MINUTE, HOUR = 60, 3600
PERIODS = (MINUTE, HOUR)
READING_KEYS = ["machine_id", "sensor", "period_s", "bucket_us"]
SCORE_KEYS = ["machine_id", "role", "period_s", "bucket_us"]
_READING_COLUMNS = [*READING_KEYS, "n", "total", "minimum", "maximum"]
_SCORE_COLUMNS = [
    *SCORE_KEYS,
    *("n", "n_flagged", "score_min", "min_at_us", "score_max", "max_at_us"),
    *("threshold", "model_version"),
]

# (machine id, sensors, reading times in us, values (n, sensors))
ReadingsPart = tuple[str, Sequence[str], np.ndarray, np.ndarray]
# (machine id, role, reading times in us, scores, threshold, model version)
ScoresPart = tuple[str, str, np.ndarray, np.ndarray, float, int]


def _segments(
    times: np.ndarray, period_s: int, lo_us: int | None, hi_us: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Rows in ``[lo_us, hi_us)`` ordered by bucket: (row order, segment starts, bucket of
    each segment); None when no row is in range."""
    period_us = period_s * 1_000_000
    rows = np.arange(len(times))
    if lo_us is not None:
        rows = rows[times[rows] >= lo_us]
    if hi_us is not None:
        rows = rows[times[rows] < hi_us]
    if rows.size == 0:
        return None
    buckets = times[rows] // period_us * period_us
    order = rows[np.argsort(buckets, kind="stable")]
    sorted_buckets = times[order] // period_us * period_us
    starts = np.flatnonzero(np.r_[True, sorted_buckets[1:] != sorted_buckets[:-1]])
    return order, starts, sorted_buckets[starts]


def reading_aggregates(
    parts: Iterable[ReadingsPart],
    periods: Sequence[int] = PERIODS,
    *,
    lo_us: int | None = None,
    hi_us: int | None = None,
) -> pd.DataFrame:
    """Per (machine, sensor, period, bucket) the count, sum, minimum and maximum of the
    readings of ``parts`` in ``[lo_us, hi_us)`` (NaN values are not counted), merged."""
    import pandas as pd  # imported on use: commands that only list the store skip it

    columns: dict[str, list[np.ndarray]] = {name: [] for name in _READING_COLUMNS}
    for machine_id, sensors, times, values in parts:
        table = np.asarray(values, dtype=np.float64).reshape(len(times), len(sensors))
        for period_s in periods:
            found = _segments(np.asarray(times, dtype=np.int64), period_s, lo_us, hi_us)
            if found is None:
                continue
            order, starts, buckets = found
            ordered = table[order]
            present = ~np.isnan(ordered)
            size = len(buckets) * len(sensors)
            with np.errstate(invalid="ignore"):
                stats = {
                    "n": np.add.reduceat(present, starts, axis=0),
                    "total": np.add.reduceat(np.where(present, ordered, 0.0), starts, axis=0),
                    "minimum": np.fmin.reduceat(ordered, starts, axis=0),
                    "maximum": np.fmax.reduceat(ordered, starts, axis=0),
                }
            columns["machine_id"].append(np.full(size, machine_id, dtype=object))
            columns["sensor"].append(np.tile(np.asarray(sensors, dtype=object), len(buckets)))
            columns["period_s"].append(np.full(size, period_s, dtype=np.int64))
            columns["bucket_us"].append(np.repeat(buckets, len(sensors)))
            for name, stat in stats.items():
                columns[name].append(stat.ravel())
    if not columns["n"]:
        return pd.DataFrame({name: [] for name in _READING_COLUMNS})
    frame = pd.DataFrame({name: np.concatenate(arrays) for name, arrays in columns.items()})
    return merge_readings(frame[frame["n"] > 0])


def merge_readings(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per key of ``frame`` (reading aggregates): counts and sums added, the
    extremes of the minima and maxima."""
    if frame.empty:
        return frame.reset_index(drop=True)
    merged = frame.groupby(READING_KEYS, sort=True, as_index=False).agg(
        n=("n", "sum"), total=("total", "sum"), minimum=("minimum", "min"),
        maximum=("maximum", "max"),
    )  # fmt: skip
    return merged[_READING_COLUMNS]


def score_aggregates(
    parts: Iterable[ScoresPart],
    periods: Sequence[int] = PERIODS,
    *,
    lo_us: int | None = None,
    hi_us: int | None = None,
) -> pd.DataFrame:
    """Per (machine, role, period, bucket) the count, flagged count (score above its
    threshold), lowest and highest score with their reading times, and the threshold
    and model version of the highest, of the scores of ``parts`` in ``[lo_us, hi_us)``."""
    import pandas as pd  # imported on use: commands that only list the store skip it

    columns: dict[str, list[np.ndarray]] = {name: [] for name in _SCORE_COLUMNS}
    for machine_id, role, times, scores, threshold, version in parts:
        times = np.asarray(times, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float64)
        for period_s in periods:
            found = _segments(times, period_s, lo_us, hi_us)
            if found is None:
                continue
            order, starts, buckets = found
            # within each bucket, rows by score: the first holds the minimum, the last the max
            by_score = order[np.lexsort((scores[order], times[order] // (period_s * 1_000_000)))]
            ends = np.r_[starts[1:], len(order)] - 1
            low, high = by_score[starts], by_score[ends]
            size = len(buckets)
            values = {
                "machine_id": np.full(size, machine_id, dtype=object),
                "role": np.full(size, role, dtype=object),
                "period_s": np.full(size, period_s, dtype=np.int64),
                "bucket_us": buckets,
                "n": np.diff(np.r_[starts, len(order)]),
                "n_flagged": np.add.reduceat(scores[order] > threshold, starts),
                "score_min": scores[low],
                "min_at_us": times[low],
                "score_max": scores[high],
                "max_at_us": times[high],
                "threshold": np.full(size, float(threshold)),
                "model_version": np.full(size, int(version), dtype=np.int64),
            }
            for name, value in values.items():
                columns[name].append(value)
    if not columns["n"]:
        return pd.DataFrame({name: [] for name in _SCORE_COLUMNS})
    frame = pd.DataFrame({name: np.concatenate(arrays) for name, arrays in columns.items()})
    return merge_scores(frame)


def merge_scores(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per key of ``frame`` (score aggregates): counts added, the lowest minimum
    and the highest maximum, each with what came with it."""
    if frame.empty:
        return frame.reset_index(drop=True)
    frame = frame.reset_index(drop=True)
    grouped = frame.groupby(SCORE_KEYS, sort=True)
    counts = grouped[["n", "n_flagged"]].sum()
    low = frame.loc[grouped["score_min"].idxmin(), [*SCORE_KEYS, "score_min", "min_at_us"]]
    high = frame.loc[
        grouped["score_max"].idxmax(),
        [*SCORE_KEYS, "score_max", "max_at_us", "threshold", "model_version"],
    ]
    merged = counts.join(low.set_index(SCORE_KEYS)).join(high.set_index(SCORE_KEYS)).reset_index()
    return merged[_SCORE_COLUMNS]
