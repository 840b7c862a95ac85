"""The per-machine drift state is written optimistically: a save lands only over the
state it was computed from, so concurrent predict tasks of one machine start exactly one
retraining (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import event

from mmlw.detectors.catalog import build_detector
from mmlw.detectors.model import AnomalyModel
from mmlw.schemas import ReadingsBatch
from mmlw.services.drift import observe, observe_many
from mmlw.services.scoring import LoadedModel
from mmlw.settings import DriftSettings
from mmlw.store import ScoreRecord, Store, StoredBatch
from mmlw.store.lifecycle import DriftRecord
from tests.integration.dispatchers import Jobs

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def test_a_save_lands_only_over_the_state_it_was_computed_from(store: Store) -> None:
    fresh = DriftRecord("m", 1, {"n": 0}, "watching", None, None, T0)
    first = store.drift.save(fresh, expected=None)
    assert first is not None and first.revision == 1 and store.drift.get("m") == first
    assert store.drift.save(fresh, expected=None) is None  # someone created it first
    second = store.drift.save(replace(first, detector={"n": 10}), expected=first)
    assert second is not None and second.revision == 2
    assert store.drift.save(replace(first, status="detected"), expected=first) is None  # stale
    assert store.drift.get("m") == second and second.detector == {"n": 10}


def test_many_states_are_saved_all_or_nothing(store: Store) -> None:
    records = [DriftRecord(f"m{k}", 1, {"n": k}, "watching", None, None, T0) for k in range(5)]
    saved = store.drift.save_many([(r, None) for r in records])
    assert saved is not None and [r.revision for r in saved] == [1] * 5
    assert store.drift.get_many([f"m{k}" for k in range(6)]) == {r.machine_id: r for r in saved}
    moved = [replace(r, detector={"n": 100}) for r in saved]
    stale = store.drift.save(replace(saved[3], status="detected"), expected=saved[3])
    assert stale is not None  # another process moved m3 first
    assert store.drift.save_many([(m, r) for m, r in zip(moved, saved, strict=True)]) is None
    assert store.drift.get("m0") == saved[0]  # nothing of the round was written
    assert store.drift.get("m3") == stale


def scored_batches(
    store: Store, n_batches: int, shift_at: int
) -> list[tuple[StoredBatch, np.ndarray]]:
    """Batches of 10 readings scored 0.3 x threshold, then 5 x from ``shift_at`` on."""
    rng = np.random.default_rng(0)
    out = []
    for k in range(n_batches):
        times = [T0 + timedelta(seconds=10 * k + i) for i in range(10)]
        batch = ReadingsBatch.of_rows("m", ["a", "b"], times, rng.normal(size=(10, 2)).tolist())
        saved = store.readings.get(store.readings.add(batch).batch_id)
        scores = (5.0 if k >= shift_at else 0.3) * np.exp(rng.normal(0, 0.05, 10))
        store.scores.add(
            ScoreRecord(saved, "m-model", 1, "champion", 1.0, scores, np.c_[scores, 0 * scores],
                        ["a", "b"])
        )  # fmt: skip
        out.append((saved, scores))
    return out


def test_concurrent_tasks_start_exactly_one_retraining(store: Store) -> None:
    rng = np.random.default_rng(1)
    detector = build_detector("pca").fit(rng.normal(size=(200, 2)))
    champion = LoadedModel("m-model", 1, AnomalyModel(detector, 1.0, ["a", "b"], "pca"))
    settings = DriftSettings(
        delta=0.5, threshold=30.0, min_readings=50, train_readings=50, min_regime_s=0
    )
    batches = scored_batches(store, 80, shift_at=40)
    jobs = Jobs()

    def feed(part: Sequence[tuple[StoredBatch, np.ndarray]]) -> None:
        for batch, scores in part:
            observe("m", champion, batch.timestamps_us, scores, store=store, dispatcher=jobs,
                    settings=settings)  # fmt: skip

    feed(batches[:40])
    assert store.drift.get("m") is not None and store.drift.get("m").status == "watching"  # type: ignore[union-attr]
    threads = [threading.Thread(target=feed, args=(batches[40 + k : 80 : 4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (job,) = store.jobs.list("m")
    assert jobs.trained == [str(job.id)] and "drift" in str(job.request["reason"])
    state = store.drift.get("m")
    assert state is not None and state.status == "retraining" and state.job_id == str(job.id)

    # waiting for that job, a task has nothing to write
    seen: list[str] = []
    event.listen(store.database.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    feed(batches[-1:])
    assert store.drift.get("m") == state
    assert not [s for s in seen if s.lstrip().upper().startswith(("UPDATE", "INSERT"))]


def test_a_fleet_is_observed_as_each_machine_alone(store: Store) -> None:
    """observe_many over 3 machines gives each the state observe() gives it alone, and
    starts the one retrain the shifted machine needs."""
    rng = np.random.default_rng(1)
    detector = build_detector("pca").fit(rng.normal(size=(200, 2)))
    champion = LoadedModel("m-model", 1, AnomalyModel(detector, 1.0, ["a", "b"], "pca"))
    settings = DriftSettings(
        delta=0.5, threshold=30.0, min_readings=50, train_readings=50, min_regime_s=0
    )
    batches = scored_batches(store, 80, shift_at=40)  # machine "m"
    jobs, alone_jobs = Jobs(), Jobs()
    fleet_ids = ("f-calm", "f-shift")
    for k, (batch, scores) in enumerate(batches):
        calm = scores if k < 40 else scores / 16.0
        fed = [("m", champion, batch.timestamps_us, scores),
               ("f-calm", champion, batch.timestamps_us, calm),
               ("f-shift", champion, batch.timestamps_us, scores)]  # fmt: skip
        observe_many(fed, store=store, dispatcher=jobs, settings=settings)
        observe("alone", champion, batch.timestamps_us, scores, store=store,
                dispatcher=alone_jobs, settings=settings)  # fmt: skip
    states = store.drift.get_many(["m", "alone", *fleet_ids])
    assert states["f-calm"].status == "watching"
    # "m" has the stored scores a retrain needs; the others only their drift test
    assert states["m"].status == "retraining" and len(jobs.trained) == 1
    assert states["f-shift"].status == states["alone"].status == "detected"
    assert states["f-shift"].change_at == states["alone"].change_at == states["m"].change_at
    assert states["f-shift"].detector == states["alone"].detector
    assert alone_jobs.trained == []
