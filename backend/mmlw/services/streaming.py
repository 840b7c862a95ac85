"""One machine's stream: its batches scored in order, through the one streaming scorer.

Serving and ``mmlw evaluate --mode stream`` score with the same call,
:meth:`~mmlw.detectors.model.AnomalyModel.stream`, which gives the same scores however
a series is cut into parts. Here a machine's stored batches are cut into the parts that
predict tasks see: :func:`advance` streams the machine's batches that follow its
checkpoint (in id order, i.e. the order ingest stored them) up to a given batch, and
stores their scores together with the new checkpoint in one transaction, under
compare-and-set. So at any time one scorer advances a machine (a concurrent one finds
the checkpoint moved, writes nothing, and starts again from the new one), nothing is
streamed twice or skipped, and a worker that dies leaves the last checkpoint, from
which the next task for the machine resumes.

A checkpoint belongs to one model version: when the alias moves to another version the
stream continues at the same batch from the new version's own initial carry (the end of
its training window).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from mmlw.detectors.base import Carry
from mmlw.detectors.input_schema import ExtraSensors, SchemaMismatch, conform_matrix
from mmlw.detectors.model import AnomalyModel, ScoredFrame
from mmlw.errors import ServiceUnavailable
from mmlw.store import ScoreRecord, Store, StoredBatch, StreamCheckpoint

__all__ = ["MAX_CONFLICTS", "STREAM_CHUNK", "StreamJob", "Streamed", "advance", "advance_many"]

STREAM_CHUNK = 64  # batches per checkpoint transaction
MAX_CONFLICTS = 20  # checkpoints moved by others before a task gives up (and is retried)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Streamed:
    """One batch streamed now: its scores (None if it does not fit the model's input
    schema, ``mismatch`` saying how) and whether they were stored now."""

    batch: StoredBatch
    scored: ScoredFrame | None = None
    mismatch: SchemaMismatch | None = None
    stored: bool = False


@dataclass(frozen=True)
class StreamJob:
    """One stream to advance: a machine's ``role`` stream with this model version, up to
    batch ``upto_id`` (from ``start_after`` if it has no checkpoint yet)."""

    machine_id: str
    role: str
    model_name: str
    version: int
    model: AnomalyModel
    upto_id: int
    start_after: int = 0


def advance_many(
    jobs: Sequence[StreamJob], *, store: Store, extra_sensors: ExtraSensors = "ignore"
) -> list[list[Streamed]]:
    """:func:`advance` for several machines' streams (one role each), per job in order,
    with the cost of one: their checkpoints and pending batches are read in one query
    each, and their scores and new checkpoints are written in one transaction, under
    compare-and-set on every checkpoint. If any checkpoint moved meanwhile, nothing of
    that transaction is kept and each job advances on its own; a job with more than
    :data:`STREAM_CHUNK` batches pending continues on its own after the first chunk.

    A message of many machines (a fleet, each with a batch or two) costs a few queries
    instead of a few per machine."""
    keys = [(job.machine_id, job.role) for job in jobs]
    if len({job.machine_id for job in jobs}) != len(jobs):
        raise ValueError("advance_many: one stream per machine")
    if len(jobs) <= 1:
        return [_advance_one(job, store, extra_sensors) for job in jobs]
    checkpoints = store.streams.get_many(keys)
    resumed = [
        _resume(checkpoints.get(key), j.version, j.start_after)
        for key, j in zip(keys, jobs, strict=True)
    ]
    ranges = {
        job.machine_id: (cursor, job.upto_id)
        for job, (_, cursor, _) in zip(jobs, resumed, strict=True)
        if cursor < job.upto_id
    }
    pending = store.streams.pending_many(ranges, STREAM_CHUNK)
    parts: list[tuple[int, StreamCheckpoint | None, StreamCheckpoint, list[ScoreRecord]]] = []
    streamed: dict[int, list[Streamed]] = {}
    for index, (key, job, (carry, _, n_rows)) in enumerate(zip(keys, jobs, resumed, strict=True)):
        batches = pending.get(job.machine_id)
        if not batches:
            continue
        items, after, records = _part(job, batches, carry, n_rows, extra_sensors)
        parts.append((index, checkpoints.get(key), after, records))
        streamed[index] = items
    created = store.streams.commit_many([(cp, after, records) for _, cp, after, records in parts])
    if created is None:  # another scorer moved a checkpoint: each stream on its own
        return [_advance_one(job, store, extra_sensors) for job in jobs]
    out: list[list[Streamed]] = [[] for _ in jobs]
    for (index, *_), made in zip(parts, created, strict=True):
        out[index] = _with_stored(streamed[index], made)
        if len(streamed[index]) == STREAM_CHUNK:  # more pending than one chunk: the rest alone
            out[index] += _advance_one(jobs[index], store, extra_sensors)
    return out


def advance(
    machine_id: str,
    role: str,
    model_name: str,
    version: int,
    model: AnomalyModel,
    upto_id: int,
    *,
    store: Store,
    extra_sensors: ExtraSensors = "ignore",
    start_after: int = 0,
) -> list[Streamed]:
    """Stream the machine's batches after its ``role`` checkpoint (after batch
    ``start_after`` if it has none yet), up to batch ``upto_id``, storing scores and
    checkpoint together (see the module docstring); the batches this call streamed, in
    order. ServiceUnavailable if the checkpoint kept moving under it."""
    job = StreamJob(machine_id, role, model_name, version, model, upto_id, start_after)
    return _advance_one(job, store, extra_sensors)


def _advance_one(job: StreamJob, store: Store, extra_sensors: ExtraSensors) -> list[Streamed]:
    """:func:`advance` of one job: part after part, retried from the checkpoint when
    another scorer moved it."""
    out: list[Streamed] = []
    conflicts = 0
    while True:
        checkpoint = store.streams.get(job.machine_id, job.role)
        carry, cursor, n_rows = _resume(checkpoint, job.version, job.start_after)
        if cursor >= job.upto_id:
            return out
        pending = store.streams.pending(job.machine_id, cursor, job.upto_id, STREAM_CHUNK)
        if not pending:
            return out
        items, after, records = _part(job, pending, carry, n_rows, extra_sensors)
        created = store.streams.commit(checkpoint, after, records)
        if created is None:
            conflicts += 1
            if conflicts > MAX_CONFLICTS:
                raise ServiceUnavailable(f"stream of {job.machine_id} ({job.role}) kept moving")
            continue
        out += _with_stored(items, created)
        if len(pending) < STREAM_CHUNK:
            return out


def _part(
    job: StreamJob,
    batches: Sequence[StoredBatch],
    carry: Carry | None,
    n_rows: int,
    extra_sensors: ExtraSensors,
) -> tuple[list[Streamed], StreamCheckpoint, list[ScoreRecord]]:
    """Stream one part of a job's batches: the items, the checkpoint after them and the
    score records to store with it."""
    items, after_carry, n = _stream(job.model, batches, carry, extra_sensors)
    after = StreamCheckpoint(
        job.machine_id, job.role, job.version, batches[-1].id, n_rows + n, dict(after_carry), 0
    )
    records = [
        _record(i.batch, job.model_name, job.version, job.role, job.model.threshold, i.scored)
        for i in items
        if i.scored is not None
    ]
    return items, after, records


def _with_stored(items: list[Streamed], created: list[bool]) -> list[Streamed]:
    """The items with whether each scored one's record was stored now (in order)."""
    stored = iter(created)
    return [replace(i, stored=next(stored)) if i.scored is not None else i for i in items]


def _resume(
    checkpoint: StreamCheckpoint | None, version: int, start_after: int
) -> tuple[Carry | None, int, int]:
    """(carry, last batch id streamed, rows streamed) to continue from with ``version``:
    the checkpoint's own if it is that version's, else that version's initial carry
    (None) from the same place, or from ``start_after`` without a checkpoint."""
    if checkpoint is None:
        return None, start_after, 0
    if checkpoint.model_version != version:
        return None, checkpoint.cursor_batch_id, 0
    return checkpoint.carry, checkpoint.cursor_batch_id, checkpoint.n_rows


def _stream(
    model: AnomalyModel,
    batches: Sequence[StoredBatch],
    carry: Carry | None,
    extra_sensors: ExtraSensors,
) -> tuple[list[Streamed], Carry, int]:
    """Stream the batches that fit the model's input schema as one part (in order);
    the items, the carry after them and how many rows went in."""
    items: list[Streamed] = []
    fitted: list[tuple[int, np.ndarray]] = []
    for batch in batches:
        try:
            X = conform_matrix(batch.columns, batch.values, model.input_schema, extra_sensors)
        except SchemaMismatch as exc:
            items.append(Streamed(batch, mismatch=exc))
            continue
        fitted.append((len(items), X))
        items.append(Streamed(batch))
    if not fitted:
        return items, dict(carry if carry is not None else model.initial_carry), 0
    scored, after = model.stream(np.concatenate([X for _, X in fitted]), carry)
    bounds = np.cumsum([len(X) for _, X in fitted])[:-1]
    parts = zip(
        np.split(scored.scores, bounds),
        np.split(scored.flags, bounds),
        np.split(scored.contributions, bounds),
        strict=True,
    )
    for (index, _), (scores, flags, contributions) in zip(fitted, parts, strict=True):
        frame = ScoredFrame(scores, flags, contributions, scored.columns)
        items[index] = replace(items[index], scored=frame)
    return items, after, len(scored.scores)


def _record(
    batch: StoredBatch,
    model_name: str,
    version: int,
    role: str,
    threshold: float,
    scored: ScoredFrame,
) -> ScoreRecord:
    return ScoreRecord(
        batch=batch,
        model_name=model_name,
        model_version=version,
        role=role,
        threshold=threshold,
        scores=scored.scores,
        contributions=scored.contributions,
        columns=scored.columns,
    )
