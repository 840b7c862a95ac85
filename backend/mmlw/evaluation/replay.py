"""One labelled series replayed through the serving path: fit on its learning period,
then score the rest in batches and step the alert rules after each (see
:mod:`mmlw.evaluation.stream`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmlw.alerts.config import AlertRule
from mmlw.evaluation.alert_replay import AlertReplay, recent_scores, score_rules

__all__ = ["DEFAULT_BATCH_SIZE", "MIN_LEARNING_ROWS", "ReplayResult", "replay_file"]

DEFAULT_BATCH_SIZE = 10
#: fewer learned rows than this is "learning period too short" (the file is reported)
MIN_LEARNING_ROWS = 30


@dataclass(frozen=True)
class ReplayResult:
    """One replayed series, aligned with its rows (learning rows: score NaN, no flag).

    ``detections`` is 0/1 (int8), 1 only at alert onsets; ``alerting`` marks the rows of
    every batch after which an alert was firing (what an operator sees as "alerting");
    ``clears`` is 0/1 (int8), 1 at the last row of a batch after which no alert is firing
    any more (the machine's "all clear": its alerts resolved); ``alerts`` counts the alert
    instances that fired (one per rule onset, so it may exceed the detections)."""

    scores: np.ndarray
    flags: np.ndarray
    detections: np.ndarray
    alerting: np.ndarray
    clears: np.ndarray
    alerts: int
    learning_rows: int
    threshold: float


def replay_file(
    frame: pd.DataFrame,
    n_learning: int,
    detector: str,
    *,
    params: Mapping[str, Any] | None = None,
    quantile: float | None = None,
    rules: Sequence[AlertRule] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ReplayResult:
    """Fit on the first ``n_learning`` rows of ``frame`` (time-ordered sensors, DatetimeIndex),
    then serve the rest in batches, alerting after each (see the module docstring).

    Guarantees: no row's score, flag or detection depends on a later row; detections are
    only at the last row of a batch, never in the learning period; the scores do not
    depend on ``batch_size`` (the streaming scorer's invariance). ValueError if the
    learning period is shorter than :data:`MIN_LEARNING_ROWS` or nothing follows it;
    a detector's own exception propagates.
    """
    from mmlw.detectors.model import fit_model
    from mmlw.settings import ModelSettings

    if batch_size < 1:
        raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
    n = len(frame)
    if n_learning < MIN_LEARNING_ROWS:
        raise ValueError(
            f"learning period too short: {n_learning} rows (need at least {MIN_LEARNING_ROWS})"
        )
    if n_learning >= n:
        raise ValueError(
            f"learning period too short: the file has {n} usable rows, all {n_learning} "
            "needed to learn (nothing left to score)"
        )
    quantile = ModelSettings().threshold_quantile if quantile is None else quantile
    alerts = AlertReplay(score_rules() if rules is None else rules)
    X = frame.to_numpy(dtype=np.float64)
    columns = [str(c) for c in frame.columns]
    model = fit_model(X[:n_learning], columns, detector, dict(params or {}), quantile).model

    live = X[n_learning:]
    index = pd.DatetimeIndex(frame.index[n_learning:])
    stamps_us = index.as_unit("us").asi8
    scores = np.full(n, np.nan)
    contributions = np.zeros((len(live), len(columns)))
    detections = np.zeros(n, dtype=np.int8)
    alerting = np.zeros(n, dtype=bool)
    clears = np.zeros(n, dtype=np.int8)
    fired_total = 0
    carry = None
    for start in range(0, len(live), batch_size):
        stop = min(start + batch_size, len(live))
        scored, carry = model.stream(live[start:stop], carry)
        scores[n_learning + start : n_learning + stop] = scored.scores
        contributions[start:stop] = scored.contributions
        if not alerts.depth:
            continue
        tail = slice(max(0, start - alerts.depth + 1), stop)
        recent = recent_scores(
            columns,
            stamps_us[tail],
            scores[n_learning:][tail],
            contributions[tail],
            model.threshold,
        )
        fired = alerts.evaluate(recent, index[stop - 1].to_pydatetime(), stop - start)
        fired_total += fired
        if fired:
            detections[n_learning + stop - 1] = 1
        if start and alerting[n_learning + start - 1] and not alerts.firing:
            clears[n_learning + stop - 1] = 1
        alerting[n_learning + start : n_learning + stop] = alerts.firing
    flags = np.zeros(n, dtype=bool)
    flags[n_learning:] = scores[n_learning:] > model.threshold
    return ReplayResult(
        scores=scores,
        flags=flags,
        detections=detections,
        alerting=alerting,
        clears=clears,
        alerts=fired_total,
        learning_rows=n_learning,
        threshold=float(model.threshold),
    )
