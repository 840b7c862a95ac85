"""A servable anomaly model: detector + calibrated threshold + the sensors it expects,
and the streaming state its training window leaves (so serving and evaluation both
continue a series from the end of the rows the model was fitted on)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmlw.detectors.base import Carry, Detector
from mmlw.detectors.catalog import build_detector
from mmlw.detectors.input_schema import InputSchema
from mmlw.detectors.threshold import quantile_threshold

__all__ = ["AnomalyModel", "FittedModel", "ScoredFrame", "fit_model"]


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
    #: the detector's carry after streaming the training rows: where serving starts
    initial_carry: dict[str, np.ndarray] = field(default_factory=dict)

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
        """Score rows whose columns are already :attr:`columns`, in that order, each on
        its own: no history before them and nothing learned (see :meth:`stream`)."""
        return self._scored(self.detector.explain(X))

    def stream(self, X: np.ndarray, carry: Carry | None = None) -> tuple[ScoredFrame, Carry]:
        """Score rows (columns as :attr:`columns`) that follow the series ``carry``
        summarises (None: the training rows), and return the carry after them. Any split
        of a series into consecutive parts scores it the same."""
        start = carry if carry is not None else getattr(self, "initial_carry", None) or None
        contributions, after = self.detector.stream(X, start)
        return self._scored(contributions), after

    def _scored(self, contributions: np.ndarray) -> ScoredFrame:
        scores = contributions.sum(axis=1)
        return ScoredFrame(
            scores=scores,
            flags=scores > self.threshold,
            contributions=contributions,
            columns=list(self.columns),
        )


@dataclass(frozen=True)
class FittedModel:
    model: AnomalyModel
    train_scores: np.ndarray
    fit_s: float
    score_s: float


def fit_model(
    X: np.ndarray,
    columns: list[str],
    detector_name: str,
    params: Mapping[str, object],
    quantile: float,
) -> FittedModel:
    """Fit ``detector_name`` on training rows ``X`` (time order), stream the same rows
    through it for the training scores and the carry serving starts from, and set the
    threshold at their ``quantile``: how training and evaluation both make a model."""
    detector = build_detector(detector_name, params)
    started = time.perf_counter()
    detector.fit(X)
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    contributions, carry = detector.stream(X, None)  # type: ignore[attr-defined]
    score_s = time.perf_counter() - started
    train_scores = contributions.sum(axis=1)
    model = AnomalyModel(
        detector=detector,  # type: ignore[arg-type]
        threshold=quantile_threshold(train_scores, quantile),
        columns=list(columns),
        detector_name=detector_name,
        params=dict(params),
        initial_carry=dict(carry),
    )
    return FittedModel(model, train_scores, fit_s, score_s)
