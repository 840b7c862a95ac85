"""``score_ratios``: what a scoring round tells the alert rules about its new readings."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from mmlw.services.scoring import LoadedModel, ScoreOutcome, score_ratios


def _loaded(threshold: float) -> Any:
    return LoadedModel("m-model", 1, SimpleNamespace(threshold=threshold))  # type: ignore[arg-type]


def test_each_scored_reading_gives_its_score_over_its_threshold_in_batch_order() -> None:
    outcomes = [
        ScoreOutcome("scored", 1, "a", 3, 0, 1, _loaded(2.0), None, np.array([0.1, 1.5, 0.2])),
        ScoreOutcome("scored", 2, "a", 2, 1, 1, _loaded(2.0), None, np.array([2.5, 0.0])),
        ScoreOutcome("scored", 3, "b", 1, 0, 1, _loaded(4.0), None, np.array([0.5])),
    ]
    ratios = score_ratios(outcomes)
    assert sorted(ratios) == ["a", "b"]
    assert ratios["a"].tolist() == [0.05, 0.75, 0.1, 1.25, 0.0]
    assert ratios["b"].tolist() == [0.125]


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
    ratios = score_ratios(outcomes)
    assert list(ratios) == ["b"] and ratios["b"].tolist() == [0.2]
