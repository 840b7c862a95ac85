"""Score stored readings batches with their machines' champion models and store them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, Protocol

import numpy as np

from backend.detectors.input_schema import ExtraSensors, SchemaMismatch, conform_matrix
from backend.detectors.model import AnomalyModel, ScoredFrame
from backend.errors import UntrustedModel
from backend.messaging.dispatch import Dispatcher
from backend.registry.base import CHALLENGER, CHAMPION
from backend.store import ScoreRecord, Store, StoredBatch

__all__ = [
    "SCHEMA_DEAD_LETTER_SOURCE",
    "LoadedModel",
    "ModelProvider",
    "ScoreOutcome",
    "alerting_machines",
    "backfill_scores",
    "drift_inputs",
    "score_batch",
    "score_batches",
]

SCHEMA_DEAD_LETTER_SOURCE = "predict"
BACKFILL_BATCHES_PER_TASK = 16

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    model_name: str
    version: int
    model: AnomalyModel


class ModelProvider(Protocol):
    def get(self, machine_id: str, alias: str = CHAMPION) -> LoadedModel | None: ...

    def version(self, machine_id: str, version: int) -> LoadedModel: ...


@dataclass(frozen=True)
class ScoreOutcome:
    status: Literal["scored", "duplicate", "no_model", "rejected"]
    batch_id: int
    machine_id: str
    n: int = 0
    n_flagged: int = 0
    model_version: int | None = None
    champion: LoadedModel | None = None
    timestamps_us: np.ndarray | None = None
    scores: np.ndarray | None = None


def score_batch(
    batch_id: int,
    *,
    store: Store,
    models: ModelProvider,
    version: int | None = None,
    extra_sensors: ExtraSensors = "ignore",
) -> ScoreOutcome:
    """:func:`score_batches` for one batch."""
    (outcome,) = score_batches(
        [batch_id], store=store, models=models, version=version, extra_sensors=extra_sensors
    )
    return outcome


def score_batches(
    batch_ids: Sequence[int],
    *,
    store: Store,
    models: ModelProvider,
    version: int | None = None,
    extra_sensors: ExtraSensors = "ignore",
) -> list[ScoreOutcome]:
    """Score each batch with its machine's champion (or the given champion ``version``,
    for backfills) and, in shadow, with the challenger if there is one (stored with role
    ``challenger``: compared at promotion, never alerting). One outcome per batch, in
    order; the batches are read in one query and all scores stored in one transaction.

    Each batch is first fitted to the model's input schema
    (:func:`~backend.detectors.input_schema.conform`); a batch that does not fit the
    champion's is dead-lettered (source ``predict``, reason naming the sensors and the
    version) and gets no score (status ``rejected``); one that does not fit the
    challenger's only loses its shadow score.

    Scores are stored at most once per (batch, model version, role): safe to redeliver.
    """
    jobs: list[_Job] = []
    outcomes: list[ScoreOutcome] = []
    for batch in store.readings.get_many(batch_ids):
        if version is not None:
            loaded: LoadedModel | None = _version_or_none(models, batch.machine_id, version)
        else:
            loaded = models.get(batch.machine_id, CHAMPION)
        if loaded is None:
            outcomes.append(ScoreOutcome("no_model", batch.id, batch.machine_id))
            continue
        try:
            fitted = conform_matrix(
                batch.columns, batch.values, loaded.model.input_schema, extra_sensors
            )
        except SchemaMismatch as exc:
            _dead_letter(batch, loaded, exc, store)
            outcomes.append(
                ScoreOutcome("rejected", batch.id, batch.machine_id, model_version=loaded.version)
            )
            continue
        jobs.append(_Job(batch, fitted, loaded, CHAMPION, outcome=len(outcomes)))
        outcomes.append(
            ScoreOutcome(
                "scored",
                batch.id,
                batch.machine_id,
                model_version=loaded.version,
                champion=loaded,
                timestamps_us=batch.timestamps_us,
            )
        )
        if version is None:
            challenger = models.get(batch.machine_id, CHALLENGER)
            if challenger is not None and challenger.version != loaded.version:
                try:
                    shadow = conform_matrix(
                        batch.columns, batch.values, challenger.model.input_schema, extra_sensors
                    )
                except SchemaMismatch as exc:
                    log.warning(
                        "batch %s: no shadow score by v%s: %s", batch.id, challenger.version, exc
                    )
                else:
                    jobs.append(_Job(batch, shadow, challenger, CHALLENGER))
    records = []
    for job, scored in zip(jobs, _score_jobs(jobs), strict=True):
        records.append(_record(job, scored))
        if job.outcome is not None:
            outcomes[job.outcome] = replace(
                outcomes[job.outcome],
                n=len(scored.scores),
                n_flagged=int(scored.flags.sum()),
                scores=scored.scores,
            )
    created = store.scores.add_many(records)
    for job, stored_now in zip(jobs, created, strict=True):
        if job.outcome is not None and not stored_now:  # already stored: a redelivery
            outcomes[job.outcome] = replace(outcomes[job.outcome], status="duplicate")
    return outcomes


def drift_inputs(
    outcomes: Sequence[ScoreOutcome],
) -> list[tuple[str, LoadedModel, np.ndarray, np.ndarray]]:
    """Newly champion-scored readings per (machine, champion version), concatenated in
    batch order: what the drift test observes once per task instead of once per batch."""
    groups: dict[tuple[str, int], list[ScoreOutcome]] = {}
    for o in outcomes:
        if o.status == "scored" and o.champion is not None:
            groups.setdefault((o.machine_id, o.champion.version), []).append(o)
    result = []
    for (machine_id, _), group in groups.items():
        champion = group[0].champion
        assert champion is not None
        timestamps = np.concatenate([o.timestamps_us for o in group if o.timestamps_us is not None])
        scores = np.concatenate([o.scores for o in group if o.scores is not None])
        result.append((machine_id, champion, timestamps, scores))
    return result


def alerting_machines(outcomes: Sequence[ScoreOutcome]) -> list[str]:
    """Machines whose alert rules need evaluating after these outcomes (a stored or
    already-stored champion score; not for unscored, rejected batches), each once."""
    return list(
        dict.fromkeys(o.machine_id for o in outcomes if o.status in ("scored", "duplicate"))
    )


@dataclass(frozen=True)
class _Job:
    """One batch's rows (in ``loaded``'s column order) to score in ``role``; ``outcome``
    is the index of the batch's outcome for champion scores."""

    batch: StoredBatch
    values: np.ndarray
    loaded: LoadedModel
    role: str
    outcome: int | None = None


def _version_or_none(models: ModelProvider, machine_id: str, version: int) -> LoadedModel | None:
    """``version`` of the machine's model, or None if it is refused as untrusted (its
    batches wait for a model like those of a machine with no champion)."""
    try:
        return models.version(machine_id, version)
    except UntrustedModel:
        return None


def _score_jobs(jobs: Sequence[_Job]) -> list[ScoredFrame]:
    """Each job's scores, in order. The jobs of one model whose detector scores each row
    on its own are scored in one call (a call costs a detector like Isolation Forest far
    more than its rows at 100-row batches); others, one call per batch."""
    out: list[ScoredFrame | None] = [None] * len(jobs)
    groups: dict[int, list[int]] = {}
    for i, job in enumerate(jobs):
        if job.loaded.model.rowwise:
            groups.setdefault(id(job.loaded.model), []).append(i)
        else:
            out[i] = job.loaded.model.score_matrix(job.values)
    for members in groups.values():
        model = jobs[members[0]].loaded.model
        scored = model.score_matrix(np.concatenate([jobs[i].values for i in members]))
        bounds = np.cumsum([len(jobs[i].values) for i in members])[:-1]
        for i, scores, flags, contributions in zip(
            members,
            np.split(scored.scores, bounds),
            np.split(scored.flags, bounds),
            np.split(scored.contributions, bounds),
            strict=True,
        ):
            out[i] = ScoredFrame(scores, flags, contributions, scored.columns)
    return [frame for frame in out if frame is not None]


def _record(job: _Job, scored: ScoredFrame) -> ScoreRecord:
    return ScoreRecord(
        batch=job.batch,
        model_name=job.loaded.model_name,
        model_version=job.loaded.version,
        role=job.role,
        threshold=job.loaded.model.threshold,
        scores=scored.scores,
        contributions=scored.contributions,
        columns=scored.columns,
    )


def _dead_letter(
    batch: StoredBatch, loaded: LoadedModel, exc: SchemaMismatch, store: Store
) -> None:
    """Keep the batch as a replayable dead letter, once per (batch, reason)."""
    reason = f"{exc.reason} for model {loaded.model_name} version {loaded.version}"
    source = SCHEMA_DEAD_LETTER_SOURCE
    if store.dead_letters.exists(source=source, message_id=batch.message_id, reason=reason):
        return
    store.dead_letters.add(
        source=source,
        reason=reason,
        body=batch.to_batch().to_wire(),
        routing_key=batch.machine_id,
        message_id=batch.message_id,
        headers={
            "batch_id": batch.id,
            "model_name": loaded.model_name,
            "model_version": loaded.version,
            "missing": exc.missing,
            "extra": exc.extra,
        },
    )
    log.warning("batch %s dead-lettered: %s", batch.id, reason)


def backfill_scores(machine_id: str, version: int, *, store: Store, dispatcher: Dispatcher) -> int:
    """Queue scoring by ``version`` for the machine's batches that have no champion score
    (readings that arrived before its first model); returns how many were queued."""
    batch_ids = store.readings.unscored_ids(machine_id)
    for first in range(0, len(batch_ids), BACKFILL_BATCHES_PER_TASK):
        dispatcher.predict_many(batch_ids[first : first + BACKFILL_BATCHES_PER_TASK], version)
    return len(batch_ids)
