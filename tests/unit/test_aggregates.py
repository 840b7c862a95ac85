"""Per-bucket aggregates (what rollups hold): parts merge into the whole, whatever the
split, order or overlap of the batches, and they equal a direct pandas aggregation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmlw.store.aggregates import (
    PERIODS,
    merge_readings,
    merge_scores,
    reading_aggregates,
    score_aggregates,
)

SENSORS = ["a", "b", "c"]


def readings(seed: int, n: int = 2_000) -> tuple[np.ndarray, np.ndarray]:
    """Unsorted reading times over about five hours (us) and values, some NaN."""
    rng = np.random.default_rng(seed)
    times = rng.integers(-3_600_000_000, 4 * 3_600_000_000, n)  # across the epoch too
    values = rng.normal(size=(n, len(SENSORS)))
    values[rng.random(values.shape) < 0.05] = np.nan
    return times, values


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_readings_of_parts_merge_into_the_whole(seed: int) -> None:
    times, values = readings(seed)
    whole = reading_aggregates([("m", SENSORS, times, values)])
    cuts = np.sort(np.random.default_rng(seed).choice(len(times), 7, replace=False))
    parts = [
        reading_aggregates([("m", SENSORS, t, v)])
        for t, v in zip(np.split(times, cuts), np.split(values, cuts), strict=True)
    ]
    merged = merge_readings(pd.concat(parts[::-1], ignore_index=True))
    exact = ["sensor", "period_s", "bucket_us", "n", "minimum", "maximum"]
    pd.testing.assert_frame_equal(merged[exact], whole[exact])
    np.testing.assert_allclose(merged["total"], whole["total"], rtol=1e-12, atol=1e-12)


def test_readings_equal_a_direct_aggregation() -> None:
    times, values = readings(3)
    got = reading_aggregates([("m", SENSORS, times, values)], lo_us=0, hi_us=3_600_000_000)
    frame = pd.DataFrame(values, columns=SENSORS).assign(t=times)
    frame = frame[(frame["t"] >= 0) & (frame["t"] < 3_600_000_000)]
    long = frame.melt(id_vars="t", var_name="sensor").dropna()
    for period in PERIODS:
        bucket = long["t"] // (period * 10**6) * (period * 10**6)
        want = long.groupby(["sensor", bucket])["value"].agg(["count", "sum", "min", "max"])
        mine = got[got["period_s"] == period].set_index(["sensor", "bucket_us"])
        np.testing.assert_array_equal(mine["n"], want["count"])
        np.testing.assert_array_equal(mine["minimum"], want["min"])
        np.testing.assert_array_equal(mine["maximum"], want["max"])
        np.testing.assert_allclose(mine["total"], want["sum"], rtol=1e-12, atol=1e-12)


def test_scores_of_parts_merge_into_the_whole() -> None:
    rng = np.random.default_rng(4)
    times = rng.integers(0, 3 * 3_600_000_000, 3_000)
    scores = rng.gamma(2.0, 0.5, len(times))
    cuts = [500, 1_200, 2_900]
    thresholds = [1.0, 1.5, 0.8, 2.0]
    parts = [
        ("m", "champion", t, s, threshold, version)
        for version, (t, s, threshold) in enumerate(
            zip(np.split(times, cuts), np.split(scores, cuts), thresholds, strict=True)
        )
    ]
    together = score_aggregates(parts)
    apart = merge_scores(pd.concat([score_aggregates([p]) for p in parts[::-1]]))
    pd.testing.assert_frame_equal(apart, together)
    limits = np.concatenate([np.full(len(t), th) for (_, _, t, _, th, _) in parts])
    hours = together[together["period_s"] == 3600]
    assert hours["n"].sum() == len(times)
    assert hours["n_flagged"].sum() == int((scores > limits).sum())
    assert hours["score_max"].max() == scores.max()
    assert int(hours.loc[hours["score_max"].idxmax(), "max_at_us"]) == times[scores.argmax()]


def test_nothing_in_range_is_an_empty_frame() -> None:
    times, values = readings(5, n=10)
    assert reading_aggregates([("m", SENSORS, times, values)], lo_us=10**15).empty
    assert score_aggregates([]).empty
