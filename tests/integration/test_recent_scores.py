"""``ScoresRepository.recent``: a machine's newest readings, however many batches they
span and however those batches overlap in time, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import event

from mmlw.schemas import ReadingsBatch
from mmlw.store import ScoreRecord, Store

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def add_scored(
    store: Store,
    seconds: Sequence[int],
    *,
    version: int = 1,
    columns: Sequence[str] = ("a", "b"),
    machine: str = "m",
) -> None:
    """One batch of readings at ``T0 + seconds``, scored by ``version`` (score = second)."""
    rng = np.random.default_rng(abs(seconds[0]))
    times = [T0 + timedelta(seconds=s) for s in seconds]
    values = rng.normal(size=(len(seconds), len(columns))).tolist()
    batch = store.readings.add(ReadingsBatch.of_rows(machine, list(columns), times, values))
    stored = store.readings.get(batch.batch_id)
    scores = np.asarray(seconds, dtype=float)
    contributions = rng.random((len(seconds), len(columns)))
    store.scores.add(
        ScoreRecord(stored, "m-model", version, "champion", 0.5 * version, scores, contributions,
                    list(columns))
    )  # fmt: skip


def newest(store: Store, n: int) -> dict[str, np.ndarray]:
    """The newest ``n`` readings over every stored batch, in time order."""
    parts = store.scores.query("m")
    timestamps = np.concatenate([p.timestamps_us for p in parts])
    order = np.argsort(timestamps, kind="stable")[-n:]
    return {
        "timestamps_us": timestamps[order],
        "scores": np.concatenate([p.scores for p in parts])[order],
        "thresholds": np.concatenate([np.full(len(p.scores), p.threshold) for p in parts])[order],
        "versions": np.concatenate([np.full(len(p.scores), p.model_version) for p in parts])[order],
        "contributions": np.concatenate([p.contributions for p in parts])[order],
    }


def statements(store: Store) -> list[str]:
    seen: list[str] = []

    def note(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(store.database.engine, "before_cursor_execute", note)
    return seen


def test_the_newest_readings_across_one_or_many_batches(store: Store) -> None:
    for k in range(30):  # 30 batches of 7 readings, one second apart; v2 from batch 20 on
        add_scored(store, list(range(7 * k, 7 * k + 7)), version=1 if k < 20 else 2)
    seen = statements(store)
    for n in (1, 5, 7, 8, 20, 69, 150, 210, 500):  # 8 and more: beyond the newest batch
        seen.clear()
        recent = store.scores.recent("m", n)
        if n <= 7:  # the newest batch holds them: its page, then its scores
            assert len(seen) == 2
        assert recent is not None and recent.columns == ["a", "b"]
        assert len(recent) == min(n, 210)
        for name, expected in newest(store, n).items():
            assert np.array_equal(getattr(recent, name), expected, equal_nan=True), (n, name)


def test_overlapping_batches_give_the_newest_readings_of_both(store: Store) -> None:
    add_scored(store, list(range(-60, -40)))  # an older batch
    add_scored(store, list(range(0, 40, 2)))  # even seconds 0-38
    add_scored(store, list(range(1, 41, 2)))  # odd seconds 1-39: ends last, is read first
    recent = store.scores.recent("m", 10)
    assert recent is not None
    assert recent.scores.tolist() == list(range(30, 40))
    assert recent.timestamps_us.tolist() == newest(store, 10)["timestamps_us"].tolist()


def test_only_the_newest_batch_columns_count(store: Store) -> None:
    add_scored(store, list(range(0, 10)))
    add_scored(store, list(range(10, 20)), columns=("a", "c"))  # a new sensor set
    recent = store.scores.recent("m", 5)
    assert recent is not None and recent.columns == ["a", "c"]
    assert recent.scores.tolist() == [15, 16, 17, 18, 19]
    assert recent.contributions.shape == (5, 2)


@pytest.mark.parametrize("n", [0, 10])
def test_nothing_scored_or_nothing_asked_is_none(store: Store, n: int) -> None:
    assert store.scores.recent("m", 10) is None
    add_scored(store, [1, 2, 3])
    assert (store.scores.recent("m", n) is None) == (n == 0)


def test_many_machines_at_once_read_as_each_alone(store: Store) -> None:
    for k in range(30):  # m: 30 batches of 7 readings
        add_scored(store, list(range(7 * k, 7 * k + 7)), version=1 if k < 20 else 2)
    add_scored(store, list(range(0, 40, 2)), machine="n2")  # two batches overlapping in time
    add_scored(store, list(range(1, 41, 2)), machine="n2")
    add_scored(store, [1, 2, 3], machine="n3")
    times = [T0 + timedelta(seconds=s) for s in (1, 2)]
    store.readings.add(ReadingsBatch.of_rows("n4", ["a"], times, [[1.0], [2.0]]))  # unscored
    seen = statements(store)
    for wanted in (
        {"m": 150, "n2": 25, "n3": 10, "n4": 5, "never-seen": 3},  # m needs more than a page
        {"m": 5, "n2": 3, "n3": 2},  # each within its newest batches
    ):
        seen.clear()
        many = store.scores.recent_many(wanted)
        if store.database.engine.dialect.name == "postgresql" and "never-seen" not in wanted:
            assert len(seen) == 2  # all machines: their newest batches, then their columns
        assert set(many) == set(wanted)
        for machine, n in wanted.items():
            alone, together = store.scores.recent(machine, n), many[machine]
            if alone is None:
                assert together is None, machine
                continue
            assert together is not None and together.columns == alone.columns
            for name in ("timestamps_us", "scores", "thresholds", "versions", "contributions"):
                assert np.array_equal(
                    getattr(together, name), getattr(alone, name), equal_nan=True
                ), (machine, name)
