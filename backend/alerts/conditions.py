"""Evaluate a rule's condition into :class:`Evidence` (pure: arrays and times in)."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from backend.alerts.config import FlagsCondition, NoDataCondition
from backend.alerts.engine import Evidence
from backend.store.scores import RecentScores

__all__ = ["TOP_SENSORS", "no_data_evidence", "scores_evidence"]

TOP_SENSORS = 3


def scores_evidence(condition: FlagsCondition, recent: RecentScores | None) -> Evidence:
    """Holds when at least ``k`` of the last ``n`` readings score above ``multiple`` x
    threshold; the evidence shows the worst of those readings (highest score/threshold)
    and its top contributing sensors. Fewer than ``n`` readings are judged as they are."""
    if recent is None or len(recent) == 0:
        return Evidence(holds=False, summary="no scored readings yet")
    tail = slice(-condition.n, None)
    scores, thresholds = recent.scores[tail], recent.thresholds[tail]
    ratio = scores / np.where(thresholds > 0, thresholds, np.finfo(float).tiny)
    above = int((ratio > condition.multiple).sum())
    worst = int(np.argmax(ratio))
    contributions = recent.contributions[tail][worst]
    top = np.argsort(-contributions, kind="stable")[:TOP_SENSORS]
    what = "threshold" if condition.multiple == 1 else f"{condition.multiple:g} x threshold"
    return Evidence(
        holds=above >= condition.k,
        summary=(
            f"{above} of the last {len(scores)} readings above {what} "
            f"(needs {condition.k}); worst score {scores[worst]:.4g} "
            f"vs threshold {thresholds[worst]:.4g}"
        ),
        score=float(scores[worst]),
        threshold=float(thresholds[worst]),
        model_version=int(recent.versions[tail][worst]),
        top_sensors=tuple((recent.columns[j], float(contributions[j])) for j in top),
    )


def no_data_evidence(
    condition: NoDataCondition, last_received: datetime | None, now: datetime
) -> Evidence:
    """Holds when nothing arrived for ``seconds`` (a machine never heard from does not
    alert: it is not known to exist)."""
    if last_received is None:
        return Evidence(holds=False, summary="no readings ever received")
    silent_s = (now - last_received).total_seconds()
    return Evidence(
        holds=silent_s >= condition.seconds,
        summary=f"no readings for {silent_s:.0f} s (limit {condition.seconds:.0f} s)",
    )
