"""A machine's stream on the real store (SQLite and PostgreSQL): whatever order predict
tasks run in, and however many run at once, every batch is streamed once, in the order
it was stored, from the checkpoint; the scores equal one uninterrupted offline stream of
the same series; a fresh scorer resumes from the checkpoint; a new champion continues
at the same batch."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from mmlw.detectors.model import AnomalyModel, fit_model
from mmlw.registry.base import CHAMPION
from mmlw.schemas import ReadingsBatch
from mmlw.services.scoring import LoadedModel, score_batches
from mmlw.store import Store

COLUMNS = ["temp", "flow", "vib"]
MACHINE = "kiln-1"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def series(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return np.column_stack(
        [20 + 0.01 * t + 0.05 * rng.normal(size=n), 5 + rng.normal(size=n), rng.normal(size=n)]
    )


class Models:
    """The model provider of one worker: the champion it is told."""

    def __init__(self, champion: LoadedModel) -> None:
        self.champion = champion

    def get(self, machine_id: str, alias: str = CHAMPION) -> LoadedModel | None:
        return self.champion if alias == CHAMPION else None

    def version(self, machine_id: str, version: int) -> LoadedModel:
        assert version == self.champion.version
        return self.champion


def loaded(name: str, version: int, train: np.ndarray) -> LoadedModel:
    model = fit_model(train, COLUMNS, name, {}, 0.99).model
    return LoadedModel(f"mmlw-{MACHINE}", version, model)


def store_batches(store: Store, values: np.ndarray, sizes: list[int], offset: int = 0) -> list[int]:
    ids, start = [], 0
    for size in sizes:
        rows = values[start : start + size]
        times = [T0 + timedelta(seconds=offset + start + i) for i in range(len(rows))]
        batch = ReadingsBatch.of_rows(MACHINE, COLUMNS, times, rows.tolist())
        ids.append(store.readings.add(batch).batch_id)
        start += size
    assert start == len(values)
    return ids


def served(store: Store, version: int | None = None) -> np.ndarray:
    parts = sorted(store.scores.query(MACHINE), key=lambda p: p.batch_id)
    if version is not None:
        parts = [p for p in parts if p.model_version == version]
    return np.concatenate([p.scores for p in parts])


def offline(model: AnomalyModel, values: np.ndarray) -> np.ndarray:
    scored, _ = model.stream(values, None)
    return scored.scores


SIZES = [1, 7, 100, 3, 1, 1, 50, 64, 2, 9, 100, 13, 1, 48]


@pytest.mark.parametrize("name", ["level_change", "half_space_trees"])
def test_tasks_in_any_order_stream_each_batch_once_in_stored_order(store: Store, name: str) -> None:
    champion = loaded(name, 1, series(400, seed=9))
    values = series(sum(SIZES))
    ids = store_batches(store, values, SIZES)
    models = Models(champion)
    # tasks arrive out of order and overlapping: the last batch first, then the rest
    tasks = [[ids[-1]], ids[3:6], ids[:2], ids, [ids[7]]]
    statuses = []
    for task in tasks:
        statuses.append([o.status for o in score_batches(task, store=store, models=models)])
    assert statuses[0][0] == "scored"  # streams everything up to it, in stored order
    assert all(s == "duplicate" for task in statuses[1:] for s in task)
    np.testing.assert_allclose(served(store), offline(champion.model, values), rtol=1e-9)
    checkpoint = store.streams.get(MACHINE, CHAMPION)
    assert checkpoint is not None and checkpoint.cursor_batch_id == ids[-1]
    assert checkpoint.n_rows == len(values) and checkpoint.model_version == 1
    assert store.scores.count(MACHINE) == len(values)


def test_concurrent_scorers_never_stream_a_batch_twice(store: Store) -> None:
    champion = loaded("level_change", 1, series(400, seed=9))
    values = series(sum(SIZES) * 3)
    ids = store_batches(store, values, SIZES * 3)
    errors: list[BaseException] = []

    def worker(task_ids: list[int]) -> None:
        try:
            for i in task_ids:
                score_batches([i], store=store, models=Models(champion))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(ids[k::3],)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.scores.count(MACHINE) == len(values)
    np.testing.assert_allclose(served(store), offline(champion.model, values), rtol=1e-9)


def test_a_fresh_scorer_resumes_and_a_new_champion_continues_at_the_same_batch(
    store: Store,
) -> None:
    v1 = loaded("level_change", 1, series(400, seed=9))
    values = series(sum(SIZES) * 2)
    ids = store_batches(store, values, SIZES * 2)
    half = len(SIZES)
    score_batches(ids[:half], store=store, models=Models(v1))
    # a new process: no in-memory state, only the checkpoint
    score_batches(ids[half : half + 3], store=store, models=Models(v1))
    n_first = sum(SIZES) + sum(SIZES[:3])
    np.testing.assert_allclose(served(store), offline(v1.model, values[:n_first]), rtol=1e-9)
    v2 = loaded("level_change", 2, series(400, seed=10))
    score_batches(ids[half + 3 :], store=store, models=Models(v2))
    np.testing.assert_allclose(
        served(store, version=2), offline(v2.model, values[n_first:]), rtol=1e-9
    )
    checkpoint = store.streams.get(MACHINE, CHAMPION)
    assert checkpoint is not None and checkpoint.model_version == 2
    assert checkpoint.n_rows == len(values) - n_first


def store_machine_batches(
    store: Store, machine: str, values: np.ndarray, sizes: list[int]
) -> list[int]:
    ids, start = [], 0
    for size in sizes:
        rows = values[start : start + size]
        times = [T0 + timedelta(seconds=start + i) for i in range(len(rows))]
        ids.append(
            store.readings.add(
                ReadingsBatch.of_rows(machine, COLUMNS, times, rows.tolist())
            ).batch_id
        )
        start += size
    return ids


def test_a_message_of_many_machines_streams_each_in_one_transaction(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twelve machines' batches interleaved, scored by messages that each name one batch of
    every machine: one commit per message (not per machine), and each machine's scores
    those of its own uninterrupted offline stream."""
    champion = loaded("level_change", 1, series(400, seed=9))
    machines = [f"kiln-{k}" for k in range(12)]
    values = {m: series(40, seed=k) for k, m in enumerate(machines)}
    ids = {m: store_machine_batches(store, m, values[m], [10, 10, 10, 10]) for m in machines}
    commits: list[int] = []
    real = store.streams.commit_many

    def counted(parts):  # type: ignore[no-untyped-def]
        commits.append(len(parts))
        return real(parts)

    monkeypatch.setattr(store.streams, "commit_many", counted)
    for k in range(4):
        outcomes = score_batches(
            [ids[m][k] for m in machines], store=store, models=Models(champion)
        )
        assert [o.status for o in outcomes] == ["scored"] * len(machines)
    assert commits == [len(machines)] * 4
    for m in machines:
        parts = sorted(store.scores.query(m), key=lambda p: p.batch_id)
        got = np.concatenate([p.scores for p in parts])
        np.testing.assert_allclose(got, offline(champion.model, values[m]), rtol=1e-9)


def test_a_checkpoint_moved_by_another_scorer_sends_each_machine_on_its_own(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    champion = loaded("level_change", 1, series(400, seed=9))
    machines = ["kiln-a", "kiln-b", "kiln-c"]
    values = {m: series(30, seed=k) for k, m in enumerate(machines)}
    ids = {m: store_machine_batches(store, m, values[m], [10, 10, 10]) for m in machines}
    real = store.streams.commit_many
    raced: list[bool] = []

    def racing(parts):  # type: ignore[no-untyped-def]
        if not raced:  # another scorer streams kiln-b first, between our reads and commit
            raced.append(True)
            score_batches([ids["kiln-b"][-1]], store=store, models=Models(champion))
        return real(parts)

    monkeypatch.setattr(store.streams, "commit_many", racing)
    outcomes = score_batches([ids[m][-1] for m in machines], store=store, models=Models(champion))
    assert raced
    statuses = {o.machine_id: o.status for o in outcomes}
    assert statuses == {"kiln-a": "scored", "kiln-b": "duplicate", "kiln-c": "scored"}
    for m in machines:
        assert store.scores.count(m) == 30
        parts = sorted(store.scores.query(m), key=lambda p: p.batch_id)
        got = np.concatenate([p.scores for p in parts])
        np.testing.assert_allclose(got, offline(champion.model, values[m]), rtol=1e-9)


def test_pending_batches_of_many_machines_in_one_query_match_each_machine_s_own(
    store: Store,
) -> None:
    """One query for many machines' ranges (on PostgreSQL: unnested array parameters)
    gives each machine what its own query gives: its batches in the range, in id order,
    at most ``limit``; a machine with nothing in its range is absent."""
    machines = ["kiln-a", "kiln-b", "kiln-c"]
    ids = {m: store_machine_batches(store, m, series(50, seed=k), [10] * 5) for k, m in
           enumerate(machines)}  # fmt: skip
    ranges = {
        "kiln-a": (ids["kiln-a"][0], ids["kiln-a"][4]),  # 4 pending
        "kiln-b": (0, ids["kiln-b"][1]),  # 2 pending
        "kiln-c": (ids["kiln-c"][4], ids["kiln-c"][4] + 1000),  # none
    }
    for limit in (3, 256):
        got = store.streams.pending_many(ranges, limit)
        want = {
            m: [b.id for b in store.streams.pending(m, after, upto, limit)]
            for m, (after, upto) in ranges.items()
        }
        assert {m: [b.id for b in batches] for m, batches in got.items()} == {
            m: found for m, found in want.items() if found
        }
        assert [b.id for b in got["kiln-a"]] == ids["kiln-a"][1 : 1 + min(limit, 4)]
        assert all(b.machine_id == m for m, batches in got.items() for b in batches)
