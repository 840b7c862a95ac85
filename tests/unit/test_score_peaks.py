"""``score_peaks``: what a scoring round tells the alert rules about its new readings."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from mmlw.services.scoring import LoadedModel, ScoreOutcome, score_peaks


def _loaded(threshold: float) -> Any:
    return LoadedModel("m-model", 1, SimpleNamespace(threshold=threshold))  # type: ignore[arg-type]


def test_each_scored_batch_gives_its_highest_score_and_threshold() -> None:
    outcomes = [
        ScoreOutcome("scored", 1, "a", 3, 0, 1, _loaded(2.0), None, np.array([0.1, 1.5, 0.2])),
        ScoreOutcome("scored", 2, "a", 2, 1, 1, _loaded(2.0), None, np.array([2.5, 0.0])),
        ScoreOutcome("scored", 3, "b", 1, 0, 1, _loaded(4.0), None, np.array([0.5])),
    ]
    assert score_peaks(outcomes) == {"a": [(1.5, 2.0), (2.5, 2.0)], "b": [(0.5, 4.0)]}


def test_a_machine_with_any_other_outcome_is_left_out() -> None:
    """A duplicate, an unscored or an empty batch says nothing of the machine's newest
    readings: the machine is left to the store's recent scores."""
    scored = ScoreOutcome("scored", 1, "a", 1, 0, 1, _loaded(1.0), None, np.array([0.1]))
    outcomes = [
        scored,
        ScoreOutcome("duplicate", 2, "a"),
        ScoreOutcome("scored", 3, "b", 1, 0, 1, _loaded(1.0), None, np.array([0.2])),
        ScoreOutcome("no_model", 4, "c"),
        ScoreOutcome("scored", 5, "d", 0, 0, 1, _loaded(1.0), None, np.array([])),
    ]
    assert score_peaks(outcomes) == {"b": [(0.2, 1.0)]}
