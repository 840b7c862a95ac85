"""A backlog longer than one checkpoint part (:data:`~mmlw.services.streaming.STREAM_CHUNK`
batches): several machines advanced together stream every batch once, in stored order,
part after part, with the scores of the whole series streamed at once, and leave their
checkpoints at the newest batch."""

from __future__ import annotations

import numpy as np

from mmlw.detectors.model import fit_model
from mmlw.schemas.readings_arrays import ReadingsArrays
from mmlw.services.streaming import STREAM_CHUNK, StreamJob, advance_many
from mmlw.store import Store

COLUMNS = ("s0", "s1", "s2")
ROWS = 3  # per batch
START_US = 1_767_225_600 * 10**6  # 2026-01-01T00:00:00Z


def _store_batches(store: Store, machine_id: str, n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n):
        values = rng.normal(size=(ROWS, len(COLUMNS)))
        if i % 50 == 49:
            values[:, 1] += 12.0  # alarms start and end across the parts
        times = START_US + (i * ROWS + np.arange(ROWS, dtype=np.int64)) * 10**6
        outcome = store.readings.add(
            ReadingsArrays(machine_id, f"{machine_id}-{i}", COLUMNS, times, values)
        )
        ids.append(outcome.batch_id)
    return ids


def test_a_backlog_of_several_parts_is_streamed_once_in_order_as_a_whole(store: Store) -> None:
    n = 2 * STREAM_CHUNK + 5
    ids = {m: _store_batches(store, m, n, seed) for seed, m in enumerate(("m-1", "m-2"))}
    training = np.random.default_rng(9).normal(size=(300, len(COLUMNS)))
    model = fit_model(training, list(COLUMNS), "adaptive", {}, 0.995).model
    jobs = [StreamJob(m, "champion", f"model-{m}", 1, model, ids[m][-1]) for m in ids]

    streamed = advance_many(jobs, store=store)

    for job, items in zip(jobs, streamed, strict=True):
        assert [i.batch.id for i in items] == ids[job.machine_id]  # each once, in order
        assert all(i.stored and i.scored is not None for i in items)
        whole, _ = model.stream(np.concatenate([i.batch.values for i in items]), None)
        scores = np.concatenate([i.scored.scores for i in items if i.scored is not None])
        np.testing.assert_allclose(scores, whole.scores, rtol=1e-9, atol=1e-12)
        assert (whole.scores > model.threshold).any()  # the alarms were scored
    checkpoints = store.streams.get_many([(m, "champion") for m in ids])
    assert {m: cp.cursor_batch_id for (m, _), cp in checkpoints.items()} == {
        m: batch_ids[-1] for m, batch_ids in ids.items()
    }
    assert advance_many(jobs, store=store) == [[], []]  # nothing left: nothing twice
