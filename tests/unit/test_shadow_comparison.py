"""Champion vs shadow challenger, aligned by reading (the pure part of the comparison)."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta

import numpy as np

from mmlw.services import shadow
from mmlw.services.shadow import compare_pairs, summarize
from mmlw.store.scores import StoredScores

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
T0_US = int(T0.timestamp() * 1e6)
SECOND = 1_000_000


def part(
    batch_id: int, start_s: int, scores: list[float], role: str, threshold: float = 1.0
) -> StoredScores:
    n = len(scores)
    return StoredScores(
        batch_id=batch_id,
        model_version=1 if role == "champion" else 2,
        role=role,
        threshold=threshold,
        columns=["a"],
        timestamps_us=T0_US + SECOND * np.arange(start_s, start_s + n),
        scores=np.asarray(scores, dtype=float),
        contributions=np.zeros((n, 1), dtype=np.float32),
    )


def pair(
    batch_id: int, start_s: int, champion: list[float], challenger: list[float]
) -> tuple[StoredScores, StoredScores]:
    return (
        part(batch_id, start_s, champion, "champion"),
        part(batch_id, start_s, challenger, "challenger", threshold=2.0),
    )


def test_doctests() -> None:
    assert doctest.testmod(shadow).failed == 0


def test_pairs_are_aligned_by_reading_in_time_order_and_summarized() -> None:
    pairs = [
        pair(2, 3, [0.1, 3.0, 0.2], [0.5, 2.5, 2.1]),
        pair(1, 0, [1.5, 0.3, 0.4], [1.0, 0.1, 0.2]),
    ]
    out = compare_pairs("m", 1, 2, pairs)
    assert [t - T0 for t in out.timestamps] == [timedelta(seconds=s) for s in range(6)]
    assert out.champion_scores == [1.5, 0.3, 0.4, 0.1, 3.0, 0.2]
    assert out.challenger_scores == [1.0, 0.1, 0.2, 0.5, 2.5, 2.1]
    assert out.champion_flags == [True, False, False, False, True, False]
    assert out.challenger_flags == [False, False, False, False, True, True]  # threshold 2
    assert out.challenger_thresholds == [2.0] * 6 and out.champion_thresholds == [1.0] * 6
    s = out.summary
    assert (s.n_compared, s.champion_flagged, s.challenger_flagged, s.disagreements) == (6, 2, 2, 2)
    assert s.champion_mean == np.mean(out.champion_scores)
    assert s.correlation == np.corrcoef(out.champion_scores, out.challenger_scores)[0, 1]
    assert (out.champion_version, out.challenger_version, out.reason) == (1, 2, None)


def test_range_and_limit_keep_the_newest_readings_in_range() -> None:
    pairs = [pair(1, 0, [0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0, 4.0])]
    out = compare_pairs(
        "m", 1, 2, pairs, start=T0 + timedelta(seconds=1), end=T0 + timedelta(seconds=4), limit=2
    )
    assert out.champion_scores == [2.0, 3.0]
    assert out.summary.n_compared == 2


def test_downsampling_keeps_the_summary_of_every_reading_and_every_disagreement() -> None:
    n = 1_000
    champion = [0.0] * n
    challenger = [0.0] * n
    challenger[537] = 5.0  # the one reading where they disagree
    out = compare_pairs("m", 1, 2, [pair(1, 0, champion, challenger)], max_points=20)
    assert len(out.timestamps) <= 20
    assert out.summary.n_compared == n and out.summary.disagreements == 1
    assert 5.0 in out.challenger_scores
    assert out.timestamps == sorted(out.timestamps)


def test_nothing_in_range_is_empty_with_a_reason() -> None:
    pairs = [pair(1, 0, [1.0], [1.0])]
    out = compare_pairs("m", 1, 2, pairs, start=T0 + timedelta(hours=1))
    assert out.timestamps == [] and out.summary.n_compared == 0
    assert out.reason == "no reading scored by both in range"
    assert out.summary.correlation is None and out.summary.champion_mean is None
    assert compare_pairs("m", 1, 2, []).reason == "no reading scored by both in range"


def test_constant_scores_have_no_correlation() -> None:
    flags = np.zeros(3, dtype=bool)
    summary = summarize(np.ones(3), np.array([1.0, 2.0, 3.0]), flags, flags)
    assert summary.correlation is None and summary.disagreements == 0
