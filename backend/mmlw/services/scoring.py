"""Score stored readings batches with their machines' champion models and store them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from mmlw.alerts.conditions import score_ratio
from mmlw.detectors.input_schema import ExtraSensors, SchemaMismatch
from mmlw.detectors.model import AnomalyModel
from mmlw.errors import UntrustedModel
from mmlw.messaging.dispatch import Dispatcher
from mmlw.registry.base import CHALLENGER, CHAMPION
from mmlw.services.streaming import Streamed, StreamJob, advance_many
from mmlw.store import Store, StoredBatch
from mmlw.store.dead_letters import SCHEMA_DEAD_LETTER_SOURCE

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
    """:func:`score_batches` for one batch: its outcome (the machine's earlier batches
    that were not streamed yet are streamed and stored on the way)."""
    return score_batches(
        [batch_id], store=store, models=models, version=version, extra_sensors=extra_sensors
    )[0]


def score_batches(
    batch_ids: Sequence[int],
    *,
    store: Store,
    models: ModelProvider,
    version: int | None = None,
    extra_sensors: ExtraSensors = "ignore",
) -> list[ScoreOutcome]:
    """Stream each named batch's machine up to that batch with its champion (or the given
    champion ``version``, for backfills) and, in shadow, its challenger if there is one
    (stored with role ``challenger``: compared at promotion, never alerting).

    A machine's batches are streamed in id order (the order they were stored), each once,
    from the machine's checkpoint (:func:`~mmlw.services.streaming.advance`): a task
    also scores the machine's earlier batches that no task has streamed yet, and a named
    batch that an earlier task already streamed is reported ``duplicate``. Outcomes: one
    per named batch, in order, then one per batch streamed on the way.

    Each batch is first fitted to the model's input schema
    (:func:`~mmlw.detectors.input_schema.conform`); a batch that does not fit the
    champion's is dead-lettered (source ``predict``, reason naming the sensors and the
    version) and gets no score (status ``rejected``); one that does not fit the
    challenger's only loses its shadow score.

    Scores are stored at most once per (batch, model version, role): safe to redeliver.
    """
    owners = store.streams.owners(batch_ids)
    named = [(int(i), owners[int(i)]) for i in batch_ids]
    upto: dict[str, int] = {}
    for batch_id, machine_id in named:
        upto[machine_id] = max(upto.get(machine_id, 0), batch_id)
    now: dict[int, ScoreOutcome] = {}
    extra: list[ScoreOutcome] = []
    no_model: set[str] = set()
    champions: list[tuple[StreamJob, LoadedModel]] = []
    shadows: list[StreamJob] = []
    for machine_id, last in sorted(upto.items()):
        champion = (
            models.get(machine_id, CHAMPION)
            if version is None
            else _version_or_none(models, machine_id, version)
        )
        if champion is None:
            no_model.add(machine_id)
            continue
        champions.append((_job(machine_id, CHAMPION, champion, last), champion))
        challenger = models.get(machine_id, CHALLENGER) if version is None else None
        if challenger is not None and challenger.version != champion.version:
            at = store.streams.get(machine_id, CHAMPION)  # a new challenger shadows from
            shadow_from = at.cursor_batch_id if at is not None else 0  # where it stands now
            shadows.append(_job(machine_id, CHALLENGER, challenger, last, shadow_from))
    streamed = advance_many([job for job, _ in champions], store=store, extra_sensors=extra_sensors)
    for (_, champion), items in zip(champions, streamed, strict=True):
        for item in items:
            outcome = _outcome(item, champion, store)
            if item.batch.id in owners:
                now[item.batch.id] = outcome
            else:
                extra.append(outcome)
    shadowed = advance_many(shadows, store=store, extra_sensors=extra_sensors)
    for job, items in zip(shadows, shadowed, strict=True):
        for item in items:
            if item.mismatch is not None:
                log.warning(
                    "batch %s: no shadow score by v%s: %s",
                    item.batch.id,
                    job.version,
                    item.mismatch,
                )
    outcomes = [
        now.get(i) or ScoreOutcome("no_model" if m in no_model else "duplicate", i, m)
        for i, m in named
    ]
    return outcomes + extra


def _job(
    machine_id: str, role: str, loaded: LoadedModel, upto_id: int, start_after: int = 0
) -> StreamJob:
    return StreamJob(
        machine_id, role, loaded.model_name, loaded.version, loaded.model, upto_id, start_after
    )


def _outcome(item: Streamed, champion: LoadedModel, store: Store) -> ScoreOutcome:
    batch = item.batch
    if item.scored is None:
        assert item.mismatch is not None
        _dead_letter(batch, champion, item.mismatch, store)
        return ScoreOutcome("rejected", batch.id, batch.machine_id, model_version=champion.version)
    return ScoreOutcome(
        "scored" if item.stored else "duplicate",
        batch.id,
        batch.machine_id,
        n=len(item.scored.scores),
        n_flagged=int(item.scored.flags.sum()),
        model_version=champion.version,
        champion=champion,
        timestamps_us=batch.timestamps_us,
        scores=item.scored.scores,
    )


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


def score_ratios(outcomes: Sequence[ScoreOutcome]) -> dict[str, np.ndarray]:
    """Each newly scored reading's score over its threshold, per machine in batch order,
    for machines every outcome of which was scored now (another status: the machine is
    left out, so its alert rules are read from the store)."""
    ratios: dict[str, list[np.ndarray]] = {}
    unknown: set[str] = set()
    for o in outcomes:
        if o.status != "scored" or o.scores is None or o.champion is None or not len(o.scores):
            unknown.add(o.machine_id)
            continue
        threshold = np.asarray(float(o.champion.model.threshold))
        ratios.setdefault(o.machine_id, []).append(score_ratio(o.scores, threshold))
    return {m: np.concatenate(found) for m, found in ratios.items() if m not in unknown}


def alerting_machines(outcomes: Sequence[ScoreOutcome]) -> dict[str, int]:
    """Machines whose alert rules need evaluating after these outcomes (a stored or
    already-stored champion score; not for unscored, rejected batches), each once, with
    how many readings were newly scored for it (at least 1)."""
    machines: dict[str, int] = {}
    for o in outcomes:
        if o.status in ("scored", "duplicate"):
            machines[o.machine_id] = machines.get(o.machine_id, 0) + (
                o.n if o.status == "scored" else 0
            )
    return {m: max(1, n) for m, n in machines.items()}


def _version_or_none(models: ModelProvider, machine_id: str, version: int) -> LoadedModel | None:
    """``version`` of the machine's model, or None if it is refused as untrusted (its
    batches wait for a model like those of a machine with no champion)."""
    try:
        return models.version(machine_id, version)
    except UntrustedModel:
        return None


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
