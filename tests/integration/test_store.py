"""The store, run against SQLite and against the PostgreSQL server alike."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from mmlw.errors import NotFound
from mmlw.schemas import JobKind, JobState, ReadingsBatch
from mmlw.store import ScoreRecord, Store

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def batch(machine: str = "m1", start: int = 0, n: int = 5, labels: bool = True) -> ReadingsBatch:
    return ReadingsBatch.of_rows(
        machine,
        ["a", "b"],
        [T0 + timedelta(seconds=start + i) for i in range(n)],
        [[float(start + i), -float(start + i)] for i in range(n)],
        [i % 2 for i in range(n)] if labels else None,
    )


def test_a_buffer_is_stored_in_time_order_per_machine(store: Store) -> None:
    """Ids are the order a machine's stream is scored in: a buffer holding several of its
    messages (random message ids, any arrival order) stores them oldest first."""
    batches = [batch(machine, start) for start in (0, 5, 10, 15, 20) for machine in ("m1", "m2")]
    outcomes = store.readings.add_many(list(reversed(batches)))
    ids = {b.message_id: o.batch_id for b, o in zip(reversed(batches), outcomes, strict=True)}
    for machine in ("m1", "m2"):
        mine = [b for b in batches if b.machine_id == machine]  # oldest first
        assert [ids[b.message_id] for b in mine] == sorted(ids[b.message_id] for b in mine)


def test_batches_are_stored_once_per_message_id(store: Store) -> None:
    b = batch()
    first = store.readings.add(b)
    again = store.readings.add(b)
    assert first.created and not again.created
    assert again.batch_id == first.batch_id
    machine = store.machines.get("m1")
    assert machine.n_readings == 5
    assert machine.columns == ["a", "b"]
    assert machine.last_reading_at == T0 + timedelta(seconds=4)
    assert store.machines.last_seen("m1") == machine.last_seen  # the Core read alerts use
    with pytest.raises(NotFound):
        store.machines.last_seen("never-seen")


def test_concurrent_redelivery_stores_once(store: Store) -> None:
    b = batch(n=50)
    outcomes = []

    def add() -> None:
        outcomes.append(store.readings.add(b))

    threads = [threading.Thread(target=add) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o.created for o in outcomes) == 1
    assert len({o.batch_id for o in outcomes}) == 1
    assert store.machines.get("m1").n_readings == 50


def test_window_orders_filters_and_keeps_labels(store: Store) -> None:
    store.readings.add(batch(start=10))
    store.readings.add(batch(start=0))
    store.readings.add(batch(start=5, labels=False))
    values, labels = store.readings.window("m1")
    assert list(values["a"]) == [float(i) for i in range(15)]
    assert values.index.tz is not None
    assert labels is not None and list(labels[:5]) == [0, 1, 0, 1, 0]
    assert list(labels[5:10]) == [-1] * 5  # batch without labels
    values, _ = store.readings.window(
        "m1", start=T0 + timedelta(seconds=3), end=T0 + timedelta(seconds=12)
    )
    assert list(values["a"]) == [float(i) for i in range(3, 12)]
    values, _ = store.readings.window("m1", last_n=4)
    assert list(values["a"]) == [11.0, 12.0, 13.0, 14.0]
    empty, none = store.readings.window("nobody")
    assert empty.empty and none is None


def test_scores_are_stored_once_per_batch_and_version(store: Store) -> None:
    outcome = store.readings.add(batch(n=4))
    stored = store.readings.get(outcome.batch_id)
    record = ScoreRecord(
        batch=stored,
        model_name="mmlw-m1",
        model_version=1,
        role="champion",
        threshold=2.0,
        scores=np.array([1.0, 3.0, 0.5, 2.5]),
        contributions=np.array([[0.5, 0.5], [2.0, 1.0], [0.25, 0.25], [0.5, 2.0]]),
        columns=["a", "b"],
    )
    assert store.scores.add(record)
    assert not store.scores.add(record)
    (part,) = store.scores.query("m1")
    assert part.model_version == 1
    assert list(part.flags) == [False, True, False, True]
    np.testing.assert_allclose(part.contributions[3], [0.5, 2.0])
    assert store.scores.count("m1") == 4
    assert store.machines.get("m1").n_scored == 4


def test_jobs_move_through_their_states(store: Store) -> None:
    job = store.jobs.create(JobKind.TRAIN, "m1", {"machine_id": "m1"})
    assert job.state is JobState.QUEUED
    running = store.jobs.start(str(job.id))
    assert running is not None and running.state is JobState.RUNNING
    done = store.jobs.finish(str(job.id), result={"version": 1})
    assert done.state is JobState.SUCCEEDED and done.duration_s is not None
    assert store.jobs.start(str(job.id)) is None  # a redelivered task does nothing
    assert [j.id for j in store.jobs.list("m1")] == [job.id]
    with pytest.raises(NotFound):
        store.jobs.get("00000000-0000-0000-0000-000000000000")


def test_dead_letters_keep_reason_and_body(store: Store) -> None:
    store.dead_letters.add(source="amqp", reason="values.0.0: bad", body=b"\x00raw")
    (letter,) = store.dead_letters.list()
    assert letter.reason == "values.0.0: bad"
    assert letter.body == b"\x00raw"
    assert store.dead_letters.count() == 1


def test_migrations_are_idempotent(empty_database_url: str) -> None:
    Store.open(empty_database_url).close()
    Store.open(empty_database_url).close()


def test_the_stacked_window_equals_the_aligned_one(sqlite_store: Store) -> None:
    """The fast window (same columns: decoded into one array) against the pandas path
    (concat + sort + mask), on out-of-order batches with and without labels."""
    from mmlw.store.windows import aligned_window

    rng = np.random.default_rng(5)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    ids = []
    for k in rng.permutation(12):  # batches arrive out of time order
        n = int(rng.integers(1, 40))
        times = [t0 + timedelta(seconds=int(k) * 100 + i) for i in range(n)]
        labels = rng.integers(0, 2, n).tolist() if k % 3 else None
        batch = ReadingsBatch.of_rows(
            "m", ["a", "b", "c"], times, rng.normal(size=(n, 3)).tolist(), labels
        )
        ids.append(sqlite_store.readings.add(batch).batch_id)
    batches = sqlite_store.readings.get_many(ids)
    cases = [(None, None, None), (None, None, 25), (t0 + timedelta(seconds=250), None, None)]
    cases += [
        (t0 + timedelta(seconds=130), t0 + timedelta(seconds=905), 60),
        (None, t0 + timedelta(seconds=3), None),
    ]
    for start, end, last_n in cases:
        fast, fast_labels = sqlite_store.readings.window("m", start, end, last_n=last_n)
        slow, slow_labels = aligned_window(batches, start, end, last_n)
        assert fast.index.equals(slow.index), (start, end, last_n)
        assert np.array_equal(fast.to_numpy(), slow.to_numpy())
        assert list(fast.columns) == list(slow.columns)
        assert slow_labels is not None  # some of all the batches carry labels
        if fast_labels is None:  # none of the batches in this window did
            assert (slow_labels.to_numpy() == -1).all()
        else:
            assert fast_labels.to_numpy().tolist() == slow_labels.to_numpy().tolist()


def test_the_newest_alias_move_id_changes_with_every_recorded_move(store: Store) -> None:
    """The token model caches compare to skip a fleet's alias search (nothing moved)."""
    assert store.alias_history.newest_id() == 0
    at = datetime(2026, 12, 1, tzinfo=UTC)
    store.alias_history.record("m1", "champion", None, 1, at=at, actor="t", reason="r")
    first = store.alias_history.newest_id()
    assert first > 0 and store.alias_history.newest_id() == first
    store.alias_history.record("m2", "champion", None, 1, at=at, actor="t", reason="r")
    assert store.alias_history.newest_id() > first
