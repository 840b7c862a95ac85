"""The alert rules of kind ``scores`` replayed on one series, as the serving path
evaluates them after each scored batch (nothing is silenced or acknowledged)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from mmlw.alerts.conditions import episode_evidence, scores_evidence
from mmlw.alerts.config import AlertRule, AlertsConfig, FlagsCondition, load_alerts_config
from mmlw.alerts.engine import AlertSnapshot, AlertState, Event, step
from mmlw.store.scores import RecentScores

__all__ = ["AlertReplay", "recent_scores", "score_rules"]


def score_rules(config: AlertsConfig | None = None) -> list[AlertRule]:
    """The rules of kind ``scores`` of ``config`` (default: the product's built-in rules)."""
    config = config if config is not None else load_alerts_config()
    return [r for r in config.rules if isinstance(r.condition, FlagsCondition)]


def recent_scores(
    columns: list[str],
    stamps_us: np.ndarray,
    scores: np.ndarray,
    contributions: np.ndarray,
    threshold: float,
) -> RecentScores:
    """What the store's ``recent`` returns: the newest scored readings, oldest first."""
    return RecentScores(
        columns=columns,
        timestamps_us=stamps_us,
        scores=scores,
        thresholds=np.full(len(scores), threshold),
        versions=np.ones(len(scores), dtype=np.int64),
        contributions=contributions,
    )


class AlertReplay:
    """The alert instances of one machine under the ``scores`` rules of ``rules`` (other
    kinds are ignored; nothing is silenced or acknowledged)."""

    def __init__(self, rules: Sequence[AlertRule]) -> None:
        self.checks = [
            (r.timing, r.condition) for r in rules if isinstance(r.condition, FlagsCondition)
        ]
        self.open: list[AlertSnapshot | None] = [None] * len(self.checks)
        #: how many newest readings the conditions look at
        self.depth = max((c.n for _, c in self.checks), default=0)

    def evaluate(self, recent: RecentScores, now: datetime, new: int = 1) -> int:
        """Step every rule at ``now`` after ``new`` readings were scored, as the serving
        path does (:func:`mmlw.services.alerting.evaluate_machine`: a rule with no open
        alert that held at one of the new readings but not at the newest is stepped with
        both); the number of alert onsets (FIRING events)."""
        fired = 0
        for i, (timing, condition) in enumerate(self.checks):
            latest = scores_evidence(condition, recent)
            current = self.open[i]
            episode = episode_evidence(condition, recent, new, latest)
            no_alert = current is None or not current.is_open
            steps = [episode, latest] if episode is not None and no_alert else [latest]
            for evidence in steps:
                transition = step(timing, self.open[i], evidence, now)
                self.open[i] = transition.after
                fired += transition.event is Event.FIRING
        return fired

    @property
    def firing(self) -> bool:
        """Whether some alert instance is firing now."""
        return any(a is not None and a.state is AlertState.FIRING for a in self.open)
