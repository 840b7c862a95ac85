"""Rollups: keeping long time ranges drawable after the raw batches are pruned.

Writing: :func:`roll_up_closed` adds every raw batch that ends before the current hour
to the per-minute and per-hour rollups (:mod:`mmlw.store.rollups`), once; the daily
retention run calls it before pruning, and pruning keeps whatever is not rolled up.

Reading: the readings and scores endpoints draw a long range (more than
:data:`LONG_RANGE`), or one reaching back before the oldest raw batch still stored, from
the rollups, plus the raw batches not rolled up yet (aggregated the same way), cut into
as many display buckets as the caller asks points for. :func:`plan` says whether and
how; :func:`readings_overview` and :func:`scores_overview` answer in the shapes of the
raw reads (readings rows, score points), so the dashboard draws them as it draws raw
data: per display bucket, a row of each sensor's minimum and one of its maximum, and
the lowest and highest score at the readings that had them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from mmlw.store.aggregates import HOUR, MINUTE, merge_scores, reading_aggregates, score_aggregates
from mmlw.store.packing import datetime_to_us
from mmlw.store.rollups import RolledUp, RollupsRepository

if TYPE_CHECKING:
    import pandas as pd

    from mmlw.store import Store

__all__ = [
    "LONG_RANGE",
    "RollupPlan",
    "ScoreSeries",
    "plan",
    "readings_overview",
    "roll_up_closed",
    "scores_overview",
]

LONG_RANGE = timedelta(days=2)
"""Ranges longer than this are read from the rollups (when the caller downsamples)."""


def roll_up_closed(store: Store, now: datetime | None = None) -> RolledUp:
    """Add the raw batches that end before the hour of ``now`` (closed hours) and are not
    rolled up yet to the rollups; idempotent."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    closed = now.replace(minute=0, second=0, microsecond=0)
    return RollupsRepository(store.database).roll_up(closed)


@dataclass(frozen=True)
class RollupPlan:
    """How to answer a range from the rollups: the range asked (``start``, ``end``; None:
    open), the range it covers (``lo``, ``hi``), the rollup period read and the width of
    one display bucket (a multiple of it), both in seconds."""

    start: datetime | None
    end: datetime | None
    lo: datetime
    hi: datetime
    period_s: int
    width_s: int


def plan(
    store: Store,
    machine_id: str,
    start: datetime | None,
    end: datetime | None,
    *,
    newest: datetime | None,
    buckets: int,
    now: datetime | None = None,
) -> RollupPlan | None:
    """A :class:`RollupPlan` when ``[start, end)`` is to be read from the rollups, else
    None (read the raw batches, as before rollups).

    Rollups answer when the range (an open end: up to the ``newest`` reading, else
    ``now``; an open start: from the oldest data kept) is longer than
    :data:`LONG_RANGE`, or when it starts before the oldest raw batch's hour and the
    rollups hold older hours (raw data was pruned there). Hour rollups are read when a
    display bucket (range / ``buckets``) is an hour or more, or when the range starts
    before the oldest minute rollup and hour rollups are older (the minute rollups were
    pruned there); else minute rollups."""
    rollups = RollupsRepository(store.database)
    oldest_raw = rollups.oldest_raw(machine_id)
    oldest_hour, oldest_minute = (
        rollups.oldest(machine_id, HOUR),
        rollups.oldest(machine_id, MINUTE),
    )
    kept = [t for t in (oldest_raw, oldest_hour) if t is not None]
    lo = start or (min(kept) if kept else None)
    hi = end or (newest + timedelta(microseconds=1) if newest else now or datetime.now(UTC))
    if lo is None or hi <= lo:
        return None
    raw_from = _floor(oldest_raw, HOUR) if oldest_raw is not None else None
    gone = oldest_hour is not None and (
        raw_from is None or (oldest_hour < raw_from and lo < raw_from)
    )
    if hi - lo <= LONG_RANGE and not gone:
        return None
    width = (hi - lo) / max(1, buckets)
    minutes_gone = (
        oldest_hour is not None
        and oldest_minute is not None
        and oldest_hour < _floor(oldest_minute, HOUR)
        and lo < oldest_minute
    )
    period = HOUR if width >= timedelta(seconds=HOUR) or minutes_gone else MINUTE
    width_s = max(1, math.ceil(width.total_seconds() / period)) * period
    return RollupPlan(start, end, lo, hi, period, width_s)


def _floor(moment: datetime, period_s: int) -> datetime:
    us = datetime_to_us(moment)
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        microseconds=us // (period_s * 1_000_000) * period_s * 1_000_000
    )


def _bounds(plan: RollupPlan) -> tuple[int | None, int | None]:
    """The asked range widened to whole rollup periods (microseconds), as the rollups
    answer it: raw readings not rolled up yet are cut at the same edges."""
    period_us = plan.period_s * 1_000_000
    lo = None if plan.start is None else datetime_to_us(plan.start) // period_us * period_us
    hi = None if plan.end is None else -(-datetime_to_us(plan.end) // period_us) * period_us
    return lo, hi


def readings_overview(
    store: Store, machine_id: str, plan: RollupPlan, columns: list[str]
) -> tuple[pd.DataFrame, int]:
    """Per display bucket two rows, oldest first: each sensor's minimum (at the start of
    the bucket's first rollup period holding readings) and its maximum (half a period
    after the start of its last one); NaN where a sensor had no reading in the bucket.
    Also how many readings the range holds (per display bucket, those of its most
    counted sensor). Sensors in ``columns`` order, then any others by name."""
    import pandas as pd  # imported on use: commands that only list the store skip it

    window = RollupsRepository(store.database).readings_window(
        machine_id, plan.period_s, plan.start, plan.end, width_s=plan.width_s
    )
    lo, hi = _bounds(plan)
    r = window.rollups
    stored = pd.DataFrame(
        {
            "sensor": r.sensors, "display": r.buckets_us, "n": r.n, "minimum": r.minimum,
            "maximum": r.maximum, "first": r.first_us, "last": r.last_us,
        }
    )  # fmt: skip
    raw = reading_aggregates(
        ((b.machine_id, b.columns, b.timestamps_us, b.values) for b in window.unrolled),
        (plan.period_s,),
        lo_us=lo,
        hi_us=hi,
    )
    width_us = plan.width_s * 1_000_000
    periods = raw["bucket_us"].astype(np.int64)
    raw = raw.assign(display=periods // width_us * width_us, first=periods, last=periods)
    parts = [f for f in (stored, raw[stored.columns]) if not f.empty]
    if not parts:
        return pd.DataFrame(columns=columns, dtype=np.float64), 0
    merged = (
        pd.concat(parts, ignore_index=True)
        .groupby(["display", "sensor"])
        .agg(
            n=("n", "sum"), minimum=("minimum", "min"), maximum=("maximum", "max"),
            first=("first", "min"), last=("last", "max"),
        )
    )  # fmt: skip
    total = int(merged["n"].groupby(level="display").max().sum())
    lows, highs = merged["minimum"].unstack("sensor"), merged["maximum"].unstack("sensor")
    first = merged["first"].groupby(level="display").min().to_numpy(dtype=np.int64)
    last = merged["last"].groupby(level="display").max().to_numpy(dtype=np.int64)
    sensors = [c for c in columns if c in lows.columns] + sorted(
        c for c in lows.columns if c not in columns
    )
    times = np.concatenate([first, last + plan.period_s * 500_000])
    values = np.concatenate([lows[sensors].to_numpy(), highs[sensors].to_numpy()])
    order = np.argsort(times, kind="stable")
    index = pd.DatetimeIndex(times[order].view("datetime64[us]")).tz_localize("UTC")
    return pd.DataFrame(values[order], columns=sensors, index=index), total


@dataclass(frozen=True)
class ScoreSeries:
    """Score points, oldest first (one column per field of ``ScoresOut``)."""

    timestamps_us: np.ndarray
    scores: np.ndarray
    thresholds: np.ndarray
    flags: np.ndarray
    versions: np.ndarray
    total: int


def scores_overview(store: Store, machine_id: str, role: str, plan: RollupPlan) -> ScoreSeries:
    """Per display bucket the lowest and the highest score at the readings that had them
    (one point when that is one reading), oldest first. Both carry the threshold and
    model version of the highest; the highest is flagged when any score of the bucket
    was, the lowest when all were. ``total``: the scores in range."""
    import pandas as pd  # imported on use: commands that only list the store skip it

    window = RollupsRepository(store.database).scores_window(
        machine_id, role, plan.period_s, plan.start, plan.end
    )
    lo, hi = _bounds(plan)
    r = window.rollups
    stored = pd.DataFrame(
        {
            "machine_id": machine_id, "role": role, "period_s": r.period_s,
            "bucket_us": r.buckets_us, "n": r.n, "n_flagged": r.n_flagged,
            "score_min": r.score_min, "min_at_us": r.min_at_us, "score_max": r.score_max,
            "max_at_us": r.max_at_us, "threshold": r.threshold, "model_version": r.model_version,
        }
    )  # fmt: skip
    raw = score_aggregates(
        (
            (machine_id, role, s.timestamps_us, s.scores, s.threshold, s.model_version)
            for s in window.unrolled
        ),
        (plan.period_s,),
        lo_us=lo,
        hi_us=hi,
    )
    merged = merge_scores(pd.concat([f for f in (stored, raw) if not f.empty] or [stored]))
    if merged.empty:
        empty = np.zeros(0)
        return ScoreSeries(empty.astype(np.int64), empty, empty, empty.astype(bool), empty, 0)
    width_us = plan.width_s * 1_000_000
    merged["bucket_us"] = merged["bucket_us"].astype(np.int64) // width_us * width_us
    shown = merge_scores(merged)
    single = (shown["min_at_us"] == shown["max_at_us"]).to_numpy()
    lows = shown[~single]
    times = np.concatenate([lows["min_at_us"], shown["max_at_us"]]).astype(np.int64)
    order = np.argsort(times, kind="stable")
    return ScoreSeries(
        timestamps_us=times[order],
        scores=np.concatenate([lows["score_min"], shown["score_max"]])[order].astype(float),
        thresholds=np.concatenate([lows["threshold"], shown["threshold"]])[order].astype(float),
        flags=np.concatenate([lows["n_flagged"] == lows["n"], shown["n_flagged"] > 0])[order],
        versions=np.concatenate([lows["model_version"], shown["model_version"]])[order].astype(
            np.int64
        ),
        total=int(shown["n"].sum()),
    )
