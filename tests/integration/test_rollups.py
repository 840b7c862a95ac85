"""Rollups against SQLite and PostgreSQL: their values are a direct aggregation of the
raw readings and scores (pandas), a batch is added once however often or however
concurrently the run repeats, and late batches join the buckets already rolled up."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mmlw.schemas import ReadingsBatch
from mmlw.store import ScoreRecord, Store
from mmlw.store.aggregates import HOUR, MINUTE, PERIODS
from mmlw.store.packing import datetime_to_us
from mmlw.store.rollups import RolledUp, RollupsRepository

T0 = datetime(2026, 11, 30, 22, 50, 7, tzinfo=UTC)  # batches cross minutes, hours and days
AFTER = datetime(2026, 12, 2, tzinfo=UTC)  # every batch here ends before it


def add_scored(
    store: Store,
    machine: str,
    start: datetime,
    n: int,
    *,
    every_s: float = 7.0,
    columns: tuple[str, ...] = ("a", "b"),
    seed: int = 0,
    threshold: float = 1.5,
    version: int = 1,
    roles: tuple[str, ...] = ("champion",),
) -> None:
    """One batch of ``n`` readings ``every_s`` apart from ``start``, scored for ``roles``."""
    rng = np.random.default_rng(seed)
    times = [start + timedelta(seconds=every_s * i) for i in range(n)]
    values = rng.normal(size=(n, len(columns))) * 10
    batch = ReadingsBatch.of_rows(machine, list(columns), times, values.tolist())
    stored = store.readings.get(store.readings.add(batch).batch_id)
    for k, role in enumerate(roles):
        store.scores.add(
            ScoreRecord(
                batch=stored, model_name=f"{machine}-model", model_version=version + k,
                role=role, threshold=threshold, scores=rng.gamma(2.0, 0.5, n),
                contributions=rng.uniform(size=(n, len(columns))), columns=list(columns),
            )
        )  # fmt: skip


def history(store: Store) -> None:
    """Two machines: batches across hour and day edges, batches overlapping in time, a
    sensor that only some batches have, thresholds and versions that change, a challenger."""
    add_scored(store, "m1", T0, 300, seed=1)
    add_scored(store, "m1", T0 + timedelta(seconds=3), 200, seed=2, threshold=2.0, version=2)
    add_scored(store, "m1", T0 + timedelta(hours=2), 400, columns=("a", "b", "c"), seed=3)
    add_scored(
        store,
        "m1",
        T0 + timedelta(hours=5),
        50,
        every_s=90,
        seed=4,
        roles=("champion", "challenger"),
    )
    add_scored(store, "m2", T0 + timedelta(minutes=30), 250, columns=("x",), seed=5)
    add_scored(store, "m2", T0 + timedelta(hours=20), 100, columns=("x",), every_s=61, seed=6)


def raw_readings(store: Store) -> pd.DataFrame:
    """Every stored reading, one row per sensor value: machine, sensor, t_us, value."""
    frames = []
    for machine in ("m1", "m2"):
        values, _ = store.readings.window(machine)
        long = values.melt(ignore_index=False, var_name="sensor").dropna()
        long["t_us"] = long.index.as_unit("us").asi8
        long["machine_id"] = machine
        frames.append(long.reset_index(drop=True))
    return pd.concat(frames, ignore_index=True)


def raw_scores(store: Store) -> pd.DataFrame:
    """Every stored score: machine, role, t_us, score, threshold, model version."""
    rows = []
    for machine in ("m1", "m2"):
        for role in ("champion", "challenger"):
            for part in store.scores.query(machine, role=role):
                rows.append(
                    pd.DataFrame(
                        {
                            "machine_id": machine, "role": role, "t_us": part.timestamps_us,
                            "score": part.scores, "threshold": part.threshold,
                            "model_version": part.model_version,
                        }
                    )
                )  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def expected_readings(raw: pd.DataFrame, period: int) -> pd.DataFrame:
    raw = raw.assign(bucket_us=raw["t_us"] // (period * 10**6) * (period * 10**6))
    out = raw.groupby(["machine_id", "sensor", "bucket_us"])["value"].agg(
        ["count", "sum", "min", "max", "mean"]
    )
    return out.reset_index().sort_values(["machine_id", "sensor", "bucket_us"], ignore_index=True)


def expected_scores(raw: pd.DataFrame, period: int) -> pd.DataFrame:
    raw = raw.assign(bucket_us=raw["t_us"] // (period * 10**6) * (period * 10**6))
    raw["flagged"] = raw["score"] > raw["threshold"]
    keys = ["machine_id", "role", "bucket_us"]
    groups = raw.groupby(keys)
    low, high = raw.loc[groups["score"].idxmin()], raw.loc[groups["score"].idxmax()]
    out = pd.DataFrame(
        {
            "n": groups["score"].count(),
            "n_flagged": groups["flagged"].sum(),
            "score_min": groups["score"].min(),
            "min_at": low.set_index(keys)["t_us"],
            "score_max": groups["score"].max(),
            "max_at": high.set_index(keys)["t_us"],
            "threshold": high.set_index(keys)["threshold"],
            "model_version": high.set_index(keys)["model_version"],
        }
    )
    return out.reset_index().sort_values(keys, ignore_index=True)


def stored_readings(store: Store, period: int) -> pd.DataFrame:
    repository = RollupsRepository(store.database)
    frames = []
    for machine in ("m1", "m2"):
        r = repository.readings_window(machine, period, None, None).rollups
        frames.append(
            pd.DataFrame(
                {
                    "machine_id": machine, "sensor": r.sensors, "bucket_us": r.buckets_us,
                    "count": r.n, "sum": r.total, "min": r.minimum, "max": r.maximum,
                    "mean": r.mean,
                }
            )
        )  # fmt: skip
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(["machine_id", "sensor", "bucket_us"], ignore_index=True)


def stored_scores(store: Store, period: int) -> pd.DataFrame:
    repository = RollupsRepository(store.database)
    frames = []
    for machine in ("m1", "m2"):
        for role in ("champion", "challenger"):
            r = repository.scores_window(machine, role, period, None, None).rollups
            frames.append(
                pd.DataFrame(
                    {
                        "machine_id": machine, "role": role, "bucket_us": r.buckets_us,
                        "n": r.n, "n_flagged": r.n_flagged, "score_min": r.score_min,
                        "min_at": r.min_at_us, "score_max": r.score_max, "max_at": r.max_at_us,
                        "threshold": r.threshold, "model_version": r.model_version,
                    }
                )
            )  # fmt: skip
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(["machine_id", "role", "bucket_us"], ignore_index=True)


def assert_rollups_match_the_raw_data(store: Store) -> None:
    readings, scores = raw_readings(store), raw_scores(store)
    for period in PERIODS:
        got, want = stored_readings(store, period), expected_readings(readings, period)
        exact = ["machine_id", "sensor", "bucket_us", "count", "min", "max"]
        pd.testing.assert_frame_equal(got[exact], want[exact], check_dtype=False)
        np.testing.assert_allclose(got["sum"], want["sum"], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-12, atol=1e-12)
        pd.testing.assert_frame_equal(
            stored_scores(store, period), expected_scores(scores, period), check_dtype=False
        )


def test_rollups_equal_a_direct_aggregation_of_the_raw_data(store: Store) -> None:
    history(store)
    done = RollupsRepository(store.database).roll_up(AFTER, chunk=2)
    assert done == RolledUp(readings_batches=6, score_batches=7)
    assert_rollups_match_the_raw_data(store)
    hours = stored_readings(store, HOUR)
    assert len(hours) > 10 and len(stored_readings(store, MINUTE)) > 10 * len(hours) / 2


def test_rolling_up_again_counts_nothing_twice(store: Store) -> None:
    history(store)
    repository = RollupsRepository(store.database)
    repository.roll_up(AFTER)
    before = stored_readings(store, MINUTE), stored_scores(store, HOUR)
    assert repository.roll_up(AFTER) == RolledUp()
    pd.testing.assert_frame_equal(stored_readings(store, MINUTE), before[0])
    pd.testing.assert_frame_equal(stored_scores(store, HOUR), before[1])
    # a batch arriving late, into buckets already rolled up, is added to them
    add_scored(store, "m1", T0 + timedelta(seconds=1), 120, every_s=11, seed=9, threshold=0.5)
    assert repository.roll_up(AFTER) == RolledUp(readings_batches=1, score_batches=1)
    assert_rollups_match_the_raw_data(store)


def test_only_batches_that_ended_before_the_cutoff_are_rolled_up(store: Store) -> None:
    history(store)
    cutoff = T0 + timedelta(hours=3)  # the first three m1 batches and m2's first ended
    done = RollupsRepository(store.database).roll_up(cutoff)
    assert done == RolledUp(readings_batches=4, score_batches=4)
    assert RollupsRepository(store.database).roll_up(AFTER).readings_batches == 2
    assert_rollups_match_the_raw_data(store)


def test_concurrent_runs_add_each_batch_once(store: Store) -> None:
    for k in range(12):
        add_scored(store, "m1", T0 + timedelta(minutes=5 * k), 60, seed=k)
        add_scored(store, "m2", T0 + timedelta(minutes=5 * k), 60, columns=("x",), seed=50 + k)
    errors: list[BaseException] = []
    results: list[RolledUp] = []
    start = threading.Barrier(3)

    def run() -> None:
        try:
            start.wait()
            results.append(RollupsRepository(store.database).roll_up(AFTER, chunk=3))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sum(r.readings_batches for r in results) == 24
    assert sum(r.score_batches for r in results) == 24
    assert_rollups_match_the_raw_data(store)


def test_score_batches_whose_readings_are_gone_are_marked_orphans(store: Store) -> None:
    import sqlalchemy as sa

    add_scored(store, "m1", T0, 30)
    with store.database.engine.begin() as connection:  # pruned before rollups existed
        connection.execute(sa.text("DELETE FROM reading_batches"))
    done = RollupsRepository(store.database).roll_up(AFTER)
    assert done == RolledUp(readings_batches=0, score_batches=1, orphan_score_batches=1)
    assert stored_scores_empty(store)


def stored_scores_empty(store: Store) -> bool:
    window = RollupsRepository(store.database).scores_window("m1", "champion", HOUR, None, None)
    return len(window.rollups) == 0 and window.unrolled == []


@pytest.mark.parametrize("period", PERIODS)
def test_old_rollups_are_pruned_by_bucket_end(store: Store, period: int) -> None:
    history(store)
    repository = RollupsRepository(store.database)
    repository.roll_up(AFTER)
    horizon = T0 + timedelta(hours=3)
    kept_before = stored_readings(store, period)
    deleted = repository.prune(period, horizon, batch_size=7)
    after = stored_readings(store, period)
    ends = after["bucket_us"] + period * 10**6
    assert (ends >= datetime_to_us(horizon)).all()
    gone = kept_before["bucket_us"] + period * 10**6 < datetime_to_us(horizon)
    assert len(after) == (~gone).sum() and deleted >= gone.sum()


def test_retention_keeps_what_the_rollups_do_not_hold(store: Store) -> None:
    import sqlalchemy as sa

    from mmlw.store.partitions import ensure_partitions
    from mmlw.store.retention import prune_readings, prune_scores

    now = datetime.now(UTC)
    old = now - timedelta(days=40)
    ensure_partitions(store.database.engine, now=old, ahead_days=1)  # PostgreSQL
    add_scored(store, "m1", old, 30)

    def kept() -> tuple[int, int]:
        return store.readings.count_in_range("m1"), store.scores.count("m1")

    prune_readings(store.database, now - timedelta(days=30))
    prune_scores(store.database, now - timedelta(days=30))
    assert kept() == (30, 30)  # neither is rolled up
    with store.database.engine.begin() as connection:  # readings rolled up, scores not
        connection.execute(sa.text("UPDATE reading_batches SET rolled_up = true"))
    prune_readings(store.database, now - timedelta(days=30))
    assert kept() == (30, 30)  # its scores still need its reading times
    assert RollupsRepository(store.database).roll_up(now) == RolledUp(score_batches=1)
    prune_readings(store.database, now - timedelta(days=30))
    prune_scores(store.database, now - timedelta(days=30))
    assert kept() == (0, 0)
    hours = stored_scores(store, HOUR)
    assert hours["n"].sum() == 30 and len(stored_readings(store, HOUR)) == 0  # not re-added
