"""The dashboard's 7-day view after raw data is pruned, against SQLite and PostgreSQL.

Eight days of hourly batches of one machine; a retention run with a 1-day raw horizon
rolls them up and drops what expired (whole day partitions on PostgreSQL), and nothing
newer; the dashboard's machine page, reading through the API as it does, then draws
the same 7 days as before the run: per display bucket the sensors' extremes and the
score extremes, equal to a direct pandas aggregation of the raw data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from mmlw.api.app import create_app
from mmlw.frontend.api_client import ApiClient
from mmlw.frontend.figures import score_figure, sensor_figure
from mmlw.frontend.pages.machine_view import (
    BUCKETS,
    SCORE_BUCKETS,
    MachineView,
    fetch_view,
    reading_buckets,
)
from mmlw.frontend.timerange import window_for
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas import ReadingsBatch
from mmlw.services.retention import apply_retention
from mmlw.services.rollups import LONG_RANGE
from mmlw.settings import Settings
from mmlw.settings.sections import RetentionSettings
from mmlw.store import ScoreRecord, Store
from mmlw.store.packing import datetime_to_us
from mmlw.store.partitions import day_partitions, ensure_partitions
from tests.support.forwarding import forwarding

NOW = datetime.now(UTC).replace(microsecond=0)
COLUMNS = ["a", "b", "c"]
EVERY_S, PER_BATCH = 20, 180  # one batch an hour
MINUTE_US = 60_000_000


def fill(store: Store) -> pd.DataFrame:
    """Hourly batches from eight days back to the last closed hour and into the current
    one, champion-scored (the threshold and version change half-way); every reading:
    time (us), batch id, sensors, score, threshold, version."""
    if store.database.dialect == "postgresql":  # day partitions as if made ahead then
        ensure_partitions(store.database.engine, now=NOW - timedelta(days=9), ahead_days=10)
    rng = np.random.default_rng(7)
    first = NOW.replace(minute=0, second=7) - timedelta(days=8)
    frames = []
    k = 0
    while (start := first + timedelta(hours=k)) < NOW - timedelta(minutes=10):
        times = [start + timedelta(seconds=EVERY_S * i) for i in range(PER_BATCH)]
        times = [t for t in times if t < NOW]
        n = len(times)
        values = rng.normal(size=(n, len(COLUMNS))) * (1 + k % 5)
        if k % 17 == 0:
            values[rng.integers(n), rng.integers(len(COLUMNS))] = 80.0  # a spike
        batch = ReadingsBatch.of_rows("m1", COLUMNS, times, values.tolist())
        stored = store.readings.get(store.readings.add(batch).batch_id)
        threshold, version = (1.5, 1) if k < 100 else (2.5, 2)
        scores = rng.gamma(2.0, 0.6, n)
        store.scores.add(
            ScoreRecord(
                batch=stored, model_name="m1-model", model_version=version, role="champion",
                threshold=threshold, scores=scores, contributions=rng.uniform(size=(n, 3)),
                columns=COLUMNS,
            )
        )  # fmt: skip
        frame = pd.DataFrame(values, columns=COLUMNS)
        frame["t_us"] = stored.timestamps_us
        frame["batch_id"] = stored.id
        frame["score"], frame["threshold"], frame["version"] = scores, threshold, version
        frames.append(frame)
        k += 1
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def dashboard(
    store: Store, make_settings: Callable[..., Settings], registry: MlflowRegistry
) -> Iterator[ApiClient]:
    app = create_app(make_settings(), store=store, registry=registry)
    with TestClient(app) as api:
        client = ApiClient("http://testserver", transport=forwarding(api))
        yield client
        client.close()


def seven_days(dashboard: ApiClient) -> tuple[MachineView, datetime]:
    """The machine page's 7-day view, read as the dashboard reads it; and its start."""
    machine = dashboard.machine("m1")
    start, end = window_for("7d", machine.last_reading_at)
    assert start is not None and machine.last_reading_at is not None
    return fetch_view(dashboard, machine, [], start, end), start


def display_width_us(start: datetime, newest: datetime, buckets: int) -> int:
    """The endpoints' display bucket: the range over ``buckets``, up to whole minutes."""
    span_s = (newest - start).total_seconds() + 1e-6
    return int(np.ceil(span_s / buckets / 60)) * MINUTE_US


def in_view(raw: pd.DataFrame, start: datetime) -> pd.DataFrame:
    """The readings a 7-day view holds: from the minute of its start (whole minutes)."""
    return raw[raw["t_us"] >= datetime_to_us(start) // MINUTE_US * MINUTE_US]


def expected_readings(raw: pd.DataFrame, width_us: int) -> pd.DataFrame:
    """Per display bucket a row of minima at its first minute holding readings, and one
    of maxima half a minute after its last one."""
    minute = raw["t_us"] // MINUTE_US * MINUTE_US
    groups = raw.assign(minute=minute).groupby(minute // width_us * width_us)
    lows = groups[COLUMNS].min().set_index(groups["minute"].min().to_numpy())
    highs = groups[COLUMNS].max().set_index(groups["minute"].max().to_numpy() + MINUTE_US // 2)
    return pd.concat([lows, highs]).sort_index(kind="stable")


def expected_scores(raw: pd.DataFrame, width_us: int) -> pd.DataFrame:
    """Per display bucket its lowest and highest score at their readings (one point when
    one reading holds both), with the threshold and version of the highest."""
    raw = raw.assign(flagged=raw["score"] > raw["threshold"])
    groups = raw.groupby((raw["t_us"] // width_us).rename("bucket"))
    high = raw.loc[groups["score"].idxmax()].set_index(groups["score"].idxmax().index)
    low = raw.loc[groups["score"].idxmin()].set_index(groups["score"].idxmin().index)
    points = [
        pd.DataFrame(
            {
                "t_us": high["t_us"], "score": high["score"], "threshold": high["threshold"],
                "flag": groups["flagged"].any(), "version": high["version"],
            }
        ),
        pd.DataFrame(
            {
                "t_us": low["t_us"], "score": low["score"], "threshold": high["threshold"],
                "flag": groups["flagged"].all(), "version": high["version"],
            }
        )[low["t_us"] != high["t_us"]],
    ]  # fmt: skip
    return pd.concat(points).sort_values("t_us", kind="stable", ignore_index=True)


def drawn_readings(view: MachineView) -> pd.DataFrame:
    item = view.readings.item
    index = [datetime_to_us(t) for t in item.timestamps]
    return pd.DataFrame(item.values, columns=item.columns, index=index, dtype=float)


def drawn_scores(view: MachineView) -> pd.DataFrame:
    item = view.scores.item
    return pd.DataFrame(
        {
            "t_us": [datetime_to_us(t) for t in item.timestamps], "score": item.scores,
            "threshold": item.thresholds, "flag": item.flags, "version": item.model_versions,
        }
    )  # fmt: skip


def assert_draws_the_raw_data(view: MachineView, raw: pd.DataFrame, start: datetime) -> None:
    newest = view.machine.last_reading_at
    assert newest is not None
    shown = in_view(raw, start)
    readings_width = display_width_us(start, newest, BUCKETS)
    want = expected_readings(shown, readings_width)
    got = drawn_readings(view)
    assert list(got.columns) == COLUMNS
    pd.testing.assert_frame_equal(got, want, check_names=False, check_index_type=False)
    assert view.readings.total == len(shown)
    scores_width = display_width_us(start, newest, SCORE_BUCKETS)
    pd.testing.assert_frame_equal(
        drawn_scores(view), expected_scores(shown, scores_width), check_dtype=False
    )
    assert view.scores.total == len(shown)
    # the whole week is drawn, from its first bucket to its last
    assert got.index[0] - datetime_to_us(start) < readings_width
    assert datetime_to_us(newest) - got.index[-1] < readings_width


def test_a_week_stays_drawable_after_a_one_day_raw_retention(
    store: Store, dashboard: ApiClient
) -> None:
    raw = fill(store)
    horizon = NOW - timedelta(days=1)
    before, start = seven_days(dashboard)
    assert_draws_the_raw_data(before, raw, start)
    ends = raw.groupby("batch_id")["t_us"].max()
    newer = sorted(int(i) for i in ends.index[ends >= datetime_to_us(horizon)])
    newer_values, _ = store.readings.window("m1", start=horizon)
    newer_scores = store.scores.query("m1", start=horizon)

    report = apply_retention(
        store, RetentionSettings(readings_days=1, scores_days=1), now=NOW
    ).summary()

    assert report["rolled_up"]["reading_batches"] == report["rolled_up"]["score_batches"]
    # all but the batches that reach into the current hour, which is not closed yet
    assert report["rolled_up"]["reading_batches"] >= len(ends) - 2
    with store.database.engine.connect() as connection:
        left = set(connection.scalars(sa.text("SELECT id FROM reading_batches")))
    assert set(newer) <= left  # nothing newer than the horizon is touched ...
    assert all(ends[i] < datetime_to_us(horizon) for i in set(ends.index) - left)
    after_values, _ = store.readings.window("m1", start=horizon)
    pd.testing.assert_frame_equal(after_values, newer_values)
    assert [s.batch_id for s in store.scores.query("m1", start=horizon)] == [
        s.batch_id for s in newer_scores
    ]
    old_day = (NOW - timedelta(days=3)).date()
    if store.database.dialect == "postgresql":  # ... and the expired days went whole
        with store.database.engine.connect() as connection:
            for table in ("reading_batches", "score_batches"):
                days = [p.day for p in day_partitions(connection, table)]
                assert min(days) == horizon.date(), (table, days)
                dropped = report["pruned"][table]["partitions_dropped"]
                assert f"{table}_p{old_day:%Y%m%d}" in dropped
    day_start = datetime.combine(horizon.date(), datetime.min.time(), tzinfo=UTC)
    assert store.readings.count_in_range("m1", None, day_start) == 0
    assert len(left) < len(ends) / 2

    after, start_after = seven_days(dashboard)
    assert start_after == start
    assert_draws_the_raw_data(after, raw, start)
    assert after.readings.item == before.readings.item
    assert after.scores.item == before.scores.item
    assert after.marked is not None  # the newest anomaly is still explained (raw)
    assert_the_page_draws_the_week(after, start)


def assert_the_page_draws_the_week(view: MachineView, start: datetime) -> None:
    """The machine page's figures, built from the view as the page builds them: every
    sensor's trace and the score trace run from the week's first hour to its last."""
    scores = score_figure(view.scores.item, selected=view.marked)
    sensors = sensor_figure(
        view.readings.item, view.scores.item, selected=view.marked, buckets=reading_buckets(view)
    )
    newest = view.machine.last_reading_at
    assert newest is not None
    traces = [t for t in sensors.data if t.name in COLUMNS] + [
        t for t in scores.data if t.name == "score"
    ]
    assert len(traces) == len(COLUMNS) + 1
    hour_ms = 3_600_000
    for trace in traces:  # x: milliseconds since the epoch
        xs = np.asarray(trace.x, dtype=float)
        assert np.min(xs) - datetime_to_us(start) / 1000 < hour_ms
        assert datetime_to_us(newest) / 1000 - np.max(xs) < hour_ms


def test_short_ranges_read_raw_readings_where_they_are_kept(
    store: Store, dashboard: ApiClient
) -> None:
    raw = fill(store)
    apply_retention(store, RetentionSettings(readings_days=1, scores_days=1), now=NOW)
    newest = NOW - timedelta(minutes=1)
    recent = dashboard.readings("m1", start=newest - timedelta(hours=6), max_points=10_000)
    stamps = {datetime_to_us(t) for t in recent.item.timestamps}
    assert stamps <= set(raw["t_us"])  # raw readings: real reading times
    assert recent.total == len(recent.item.timestamps)
    old = NOW - timedelta(days=4)  # a day whose raw data is gone: from the rollups
    pruned = dashboard.readings("m1", start=old, end=old + timedelta(hours=6), max_points=1_000)
    assert pruned.item.timestamps
    lo = datetime_to_us(old) // MINUTE_US * MINUTE_US  # the range in whole minutes
    hi = -(-datetime_to_us(old + timedelta(hours=6)) // MINUTE_US) * MINUTE_US
    shown = raw[(raw["t_us"] >= lo) & (raw["t_us"] < hi)]
    assert pruned.total == len(shown)
    values = np.array(pruned.item.values, dtype=float)
    np.testing.assert_array_equal(values.max(axis=0), shown[COLUMNS].max().to_numpy())
    np.testing.assert_array_equal(values.min(axis=0), shown[COLUMNS].min().to_numpy())


def test_ranges_over_two_days_are_drawn_from_rollups(store: Store, dashboard: ApiClient) -> None:
    raw = fill(store)
    newest = dashboard.machine("m1").last_reading_at
    assert newest is not None and timedelta(days=2) == LONG_RANGE  # as the endpoints say
    reading_times = set(raw["t_us"])
    for hours, from_rollups in ((47, False), (49, True)):
        start = newest - timedelta(hours=hours)
        readings = dashboard.readings("m1", start=start, max_points=2 * 3 * 300 + 2).item
        scores = dashboard.scores("m1", start=start, max_points=1802).item
        stamps = {datetime_to_us(t) for t in readings.timestamps}
        # raw: readings' own times; rollups: a minute's start, or half a minute after it
        assert stamps.isdisjoint(reading_times) == from_rollups, hours
        assert all(t % (MINUTE_US // 2) == 0 for t in stamps) == from_rollups, hours
        assert {datetime_to_us(t) for t in scores.timestamps} <= reading_times
        assert len(scores.timestamps) <= 1802


def test_where_minute_rollups_are_gone_hours_answer(store: Store, dashboard: ApiClient) -> None:
    raw = fill(store)
    retention = RetentionSettings(readings_days=1, scores_days=1, rollup_minute_days=3)
    report = apply_retention(store, retention, now=NOW).summary()
    assert report["pruned"]["rollups_minute"]["rows_deleted"] > 0
    view, start = seven_days(dashboard)
    stamps = np.array([datetime_to_us(t) for t in view.readings.item.timestamps])
    hour_us = 60 * MINUTE_US
    assert np.all(stamps % (hour_us // 2) == 0) and len(stamps) <= 2 * 24 * 8
    shown = raw[raw["t_us"] >= datetime_to_us(start) // hour_us * hour_us]
    values = np.array(view.readings.item.values, dtype=float)
    np.testing.assert_array_equal(values.max(axis=0), shown[COLUMNS].max().to_numpy())
    np.testing.assert_array_equal(values.min(axis=0), shown[COLUMNS].min().to_numpy())
    assert view.readings.total == len(shown) and view.scores.total == len(shown)
    assert max(view.scores.item.scores) == shown["score"].max()
