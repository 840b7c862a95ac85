"""A stored score batch as the readers of ``score_batches`` get it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Row

from mmlw.store.compact import unpack_contributions, unpack_times
from mmlw.store.packing import unpack
from mmlw.store.tables import ScoreBatch

__all__ = ["STORED_COLUMNS", "StoredScores", "stored_scores"]


@dataclass(frozen=True)
class StoredScores:
    batch_id: int
    model_version: int
    role: str
    threshold: float
    columns: list[str]
    timestamps_us: np.ndarray
    scores: np.ndarray
    contributions: np.ndarray

    @property
    def flags(self) -> np.ndarray:
        return self.scores > self.threshold


# what :func:`stored_scores` reads of a score batch row
STORED_COLUMNS = (
    "batch_id",
    "model_version",
    "role",
    "threshold",
    "columns",
    "scores",
    "contributions",
    "contribution_rows",
    "n",
)


def stored_scores(row: ScoreBatch | Row[Any], timestamps_us: bytes) -> StoredScores:
    """The scores of a ``score_batches`` row (ORM object or Core row), at the reading
    times of its readings batch."""
    scores = unpack(row.scores, "f8")
    return StoredScores(
        batch_id=row.batch_id,
        model_version=row.model_version,
        role=row.role,
        threshold=row.threshold,
        columns=list(row.columns),
        timestamps_us=unpack_times(timestamps_us),
        scores=scores,
        contributions=unpack_contributions(
            row.contributions, row.contribution_rows, len(scores), len(row.columns)
        ),
    )
