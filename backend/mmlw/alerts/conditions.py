"""Evaluate a rule's condition into :class:`Evidence` (pure: arrays and times in)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np

from mmlw.alerts.config import FlagsCondition, NoDataCondition
from mmlw.alerts.engine import Evidence

__all__ = [
    "TOP_SENSORS",
    "ScoreWindow",
    "ScoredReadings",
    "could_hold",
    "episode_evidence",
    "no_data_evidence",
    "score_ratio",
    "scores_evidence",
]

TOP_SENSORS = 3


class ScoredReadings(Protocol):
    """A machine's newest scored readings, oldest first, one row per reading: what a
    ``scores`` condition looks at (the store's ``RecentScores`` is one), so that this
    pure code needs no store."""

    @property
    def columns(self) -> Sequence[str]: ...
    @property
    def scores(self) -> np.ndarray: ...
    @property
    def thresholds(self) -> np.ndarray: ...
    @property
    def versions(self) -> np.ndarray: ...
    @property
    def contributions(self) -> np.ndarray: ...  # readings x columns

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class ScoreWindow:
    """:class:`ScoredReadings` from arrays at hand (a replay, a test)."""

    columns: Sequence[str]
    scores: np.ndarray
    thresholds: np.ndarray
    versions: np.ndarray
    contributions: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def score_ratio(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Each score over its threshold, as the score rules compare them with their
    ``multiple`` (a threshold of 0 or less counts as the smallest positive number).

    >>> score_ratio(np.array([3.0, 1.0]), np.array([2.0, 4.0])).tolist()
    [1.5, 0.25]
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    return np.asarray(scores, dtype=np.float64) / np.where(
        thresholds > 0, thresholds, np.finfo(float).tiny
    )


def _in_windows(above: np.ndarray, n: int) -> np.ndarray:
    """Per reading, how many of the ``n`` readings up to it are ``above``."""
    return np.convolve(above.astype(np.int64), np.ones(n, dtype=np.int64))[: len(above)]


def could_hold(condition: FlagsCondition, ratios: np.ndarray) -> bool:
    """Whether ``condition`` could hold at one of the new readings whose score ratios
    (:func:`score_ratio`, oldest first) are ``ratios``, knowing only that it did not hold
    at the reading before them: the window of ``n`` readings ending at a new reading
    counts its new readings above ``multiple``, and of the older readings in it at most
    ``k - 1`` (they are among the ``n`` that did not hold) and no more than there are. A
    NaN ratio counts as above. False means no evaluation at these readings can find the
    rule holding, which spares reading the older scores.

    >>> rule = FlagsCondition(kind="scores", k=5, n=10)
    >>> ratios = np.zeros(100)
    >>> ratios[50] = 3.0  # one reading above, far from the older ones
    >>> could_hold(rule, ratios), could_hold(rule, np.roll(ratios, -48))  # one near them
    (False, True)
    >>> ratios[[52, 54, 56, 58]] = 2.0  # five above within ten readings
    >>> could_hold(rule, ratios), could_hold(rule, np.array([np.nan]))
    (True, True)
    """
    above = ~(np.asarray(ratios, dtype=np.float64) <= condition.multiple)
    counts = _in_windows(above, condition.n)
    older = np.maximum(condition.n - 1 - np.arange(len(above)), 0)
    return bool((counts + np.minimum(older, condition.k - 1) >= condition.k).any())


def scores_evidence(
    condition: FlagsCondition, recent: ScoredReadings | None, new: int = 1
) -> Evidence:
    """Holds when, at one of the ``new`` newest readings (those scored since the last
    evaluation), at least ``k`` of the ``n`` readings up to it score above ``multiple`` x
    threshold — so a short episode inside a large batch is not missed because it ended
    before the batch's last ``n`` readings. ``recent`` should hold ``n + new - 1``
    readings; fewer are judged as they are. The evidence shows the worst of the readings
    looked at (highest score/threshold) and its top contributing sensors.

    >>> from mmlw.alerts.config import FlagsCondition
    >>> flags = np.array([0, 1, 1, 1, 0, 0, 0, 0], dtype=float)  # an episode, then calm
    >>> recent = ScoreWindow(["a"], flags * 2.0, np.ones(8), np.ones(8, dtype=np.int64),
    ...                      flags[:, None] * 2.0)
    >>> rule = FlagsCondition(kind="scores", k=3, n=4)
    >>> scores_evidence(rule, recent).holds, scores_evidence(rule, recent, new=8).holds
    (False, True)
    """
    if recent is None or len(recent) == 0:
        return Evidence(holds=False, summary="no scored readings yet")
    new = max(1, min(int(new), len(recent)))
    tail = slice(-(condition.n + new - 1), None)
    scores, thresholds = recent.scores[tail], recent.thresholds[tail]
    ratio = score_ratio(scores, thresholds)
    counts = _in_windows(ratio > condition.multiple, condition.n)
    above = int(counts[-new:].max())
    worst = int(np.argmax(ratio))
    contributions = recent.contributions[tail][worst]
    # none when the worst reading's contributions were not kept (not above its threshold)
    explained = not np.isnan(contributions).any()
    top = np.argsort(-contributions, kind="stable")[: TOP_SENSORS if explained else 0]
    what = "threshold" if condition.multiple == 1 else f"{condition.multiple:g} x threshold"
    window = min(condition.n, len(scores))
    where = f"the last {window}" if new == 1 else f"{window} in a row (of the {new} newest)"
    return Evidence(
        holds=above >= condition.k,
        summary=(
            f"{above} of {where} readings above {what} "
            f"(needs {condition.k}); worst score {scores[worst]:.4g} "
            f"vs threshold {thresholds[worst]:.4g}"
        ),
        score=float(scores[worst]),
        threshold=float(thresholds[worst]),
        model_version=int(recent.versions[tail][worst]),
        top_sensors=tuple((recent.columns[j], float(contributions[j])) for j in top),
    )


def episode_evidence(
    condition: FlagsCondition, recent: ScoredReadings | None, new: int, latest: Evidence
) -> Evidence | None:
    """The evidence of a short episode among the ``new`` newest readings that the newest
    readings (``latest``, :func:`scores_evidence` with ``new=1``) no longer show; None if
    there is none. A rule with no open alert is stepped with it first, so the episode
    fires, then with ``latest``, so it can resolve (serving and evaluation alike)."""
    if new <= 1 or latest.holds:
        return None
    earlier = scores_evidence(condition, recent, new)
    return earlier if earlier.holds else None


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
