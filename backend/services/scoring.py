"""Score one stored readings batch with the machine's champion model and store it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import pandas as pd

from backend.detectors.model import AnomalyModel, ScoredFrame
from backend.messaging.dispatch import Dispatcher
from backend.registry.base import CHALLENGER, CHAMPION
from backend.store import ScoreRecord, Store, StoredBatch

__all__ = ["LoadedModel", "ModelProvider", "ScoreOutcome", "backfill_scores", "score_batch"]

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
    status: Literal["scored", "duplicate", "no_model"]
    batch_id: int
    machine_id: str
    n: int = 0
    n_flagged: int = 0
    model_version: int | None = None
    champion: LoadedModel | None = None
    timestamps_us: np.ndarray | None = None
    scores: np.ndarray | None = None


def score_batch(
    batch_id: int, *, store: Store, models: ModelProvider, version: int | None = None
) -> ScoreOutcome:
    """Score with the champion (or the given champion ``version``, for backfills) and,
    in shadow, with the challenger if there is one (stored with role ``challenger``:
    compared at promotion, never alerting).

    Scores are stored at most once per (batch, model version, role): safe to redeliver.
    """
    batch = store.readings.get(batch_id)
    if version is not None:
        loaded: LoadedModel | None = models.version(batch.machine_id, version)
    else:
        loaded = models.get(batch.machine_id, CHAMPION)
    if loaded is None:
        return ScoreOutcome("no_model", batch_id, batch.machine_id)
    frame = batch.frame()
    scored, created = _score_and_store(batch, frame, loaded, CHAMPION, store)
    if version is None:
        challenger = models.get(batch.machine_id, CHALLENGER)
        if challenger is not None and challenger.version != loaded.version:
            _score_and_store(batch, frame, challenger, CHALLENGER, store)
    return ScoreOutcome(
        "scored" if created else "duplicate",
        batch_id,
        batch.machine_id,
        n=len(scored.scores),
        n_flagged=int(scored.flags.sum()),
        model_version=loaded.version,
        champion=loaded,
        timestamps_us=batch.timestamps_us,
        scores=scored.scores,
    )


def _score_and_store(
    batch: StoredBatch, frame: pd.DataFrame, loaded: LoadedModel, role: str, store: Store
) -> tuple[ScoredFrame, bool]:
    """Score ``frame`` with ``loaded`` and store it under ``role``; (scores, created)."""
    scored = loaded.model.score(frame)
    created = store.scores.add(
        ScoreRecord(
            batch=batch,
            model_name=loaded.model_name,
            model_version=loaded.version,
            role=role,
            threshold=loaded.model.threshold,
            scores=scored.scores,
            contributions=scored.contributions,
            columns=scored.columns,
        )
    )
    return scored, created


def backfill_scores(machine_id: str, version: int, *, store: Store, dispatcher: Dispatcher) -> int:
    """Queue scoring by ``version`` for the machine's batches that have no champion score
    (readings that arrived before its first model); returns how many were queued."""
    batch_ids = store.readings.unscored_ids(machine_id)
    for batch_id in batch_ids:
        dispatcher.predict(batch_id, version)
    return len(batch_ids)
