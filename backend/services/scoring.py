"""Score one stored readings batch with the machine's champion model and store it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Protocol

from backend.detectors.model import AnomalyModel
from backend.registry.base import CHAMPION
from backend.store import ScoreRecord, Store

__all__ = ["LoadedModel", "ModelProvider", "ScoreOutcome", "score_batch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    model_name: str
    version: int
    model: AnomalyModel


class ModelProvider(Protocol):
    def get(self, machine_id: str, alias: str = CHAMPION) -> LoadedModel | None: ...


@dataclass(frozen=True)
class ScoreOutcome:
    status: Literal["scored", "duplicate", "no_model"]
    batch_id: int
    n: int = 0
    n_flagged: int = 0
    model_version: int | None = None


def score_batch(batch_id: int, *, store: Store, models: ModelProvider) -> ScoreOutcome:
    """Scores are stored at most once per (batch, model version): safe to redeliver."""
    batch = store.readings.get(batch_id)
    loaded = models.get(batch.machine_id, CHAMPION)
    if loaded is None:
        return ScoreOutcome("no_model", batch_id)
    scored = loaded.model.score(batch.frame())
    created = store.scores.add(
        ScoreRecord(
            batch=batch,
            model_name=loaded.model_name,
            model_version=loaded.version,
            role=CHAMPION,
            threshold=loaded.model.threshold,
            scores=scored.scores,
            contributions=scored.contributions,
            columns=scored.columns,
        )
    )
    return ScoreOutcome(
        "scored" if created else "duplicate",
        batch_id,
        n=len(scored.scores),
        n_flagged=int(scored.flags.sum()),
        model_version=loaded.version,
    )
