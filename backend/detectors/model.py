"""A servable anomaly model: detector + calibrated threshold + the sensors it expects."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from backend.detectors.base import Detector
from backend.detectors.input_schema import InputSchema

__all__ = ["AnomalyModel", "ScoredFrame"]


@dataclass(frozen=True)
class ScoredFrame:
    scores: np.ndarray
    flags: np.ndarray
    contributions: np.ndarray
    columns: list[str]


@dataclass
class AnomalyModel:
    """What is logged to the registry and loaded by workers. Columns are matched by name."""

    detector: Detector
    threshold: float
    columns: list[str]
    detector_name: str
    params: dict[str, object] = field(default_factory=dict)

    @property
    def input_schema(self) -> InputSchema:
        """What this model reads: its sensors in order (its MLflow signature)."""
        return InputSchema.of(self.columns)

    @property
    def rowwise(self) -> bool:
        """Whether each row's score depends on that row alone (so rows of several batches
        may be scored in one call); detectors with trailing windows say False."""
        return bool(getattr(self.detector, "rowwise", True))

    def align(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"columns: missing sensors {missing} expected by the model")
        return frame[self.columns].to_numpy(dtype=np.float64)

    def score(self, frame: pd.DataFrame) -> ScoredFrame:
        return self.score_matrix(self.align(frame))

    def score_matrix(self, X: np.ndarray) -> ScoredFrame:
        """Score rows whose columns are already :attr:`columns`, in that order."""
        contributions = self.detector.explain(X)
        scores = contributions.sum(axis=1)
        return ScoredFrame(
            scores=scores,
            flags=scores > self.threshold,
            contributions=contributions,
            columns=list(self.columns),
        )
