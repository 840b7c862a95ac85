"""Champion vs shadow challenger on the readings both scored: the two score series
aligned by reading, and how often each flags and where they disagree.

The challenger scores every batch the champion scores in shadow (never alerting); this
is what an operator looks at before promoting it. The versions compared are the current
``champion`` and ``challenger`` aliases, the same pair the shadow promotion gate reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from mmlw.registry.base import CHALLENGER, CHAMPION, ModelRegistry
from mmlw.schemas.shadow import ShadowComparisonOut, ShadowSummaryOut
from mmlw.services.downsample import downsample_indices
from mmlw.store import Store
from mmlw.store.packing import us_to_datetimes
from mmlw.store.score_pairs import paired_scores
from mmlw.store.scores import StoredScores

__all__ = ["compare_pairs", "empty_comparison", "shadow_comparison", "summarize"]

Pair = tuple[StoredScores, StoredScores]


def shadow_comparison(
    machine_id: str,
    *,
    store: Store,
    registry: ModelRegistry,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 10_000,
    max_points: int | None = None,
) -> ShadowComparisonOut:
    """The newest ``limit`` readings in ``[start, end)`` scored by both the champion and
    the challenger (raises NotFound for an unknown machine; empty with a reason when
    there is no champion or no challenger)."""
    store.machines.get(machine_id)
    champion = registry.alias_version(machine_id, CHAMPION)
    challenger = registry.alias_version(machine_id, CHALLENGER)
    if champion is None or challenger is None:
        missing = "champion" if champion is None else "challenger"
        return empty_comparison(
            machine_id, champion, challenger, f"machine {machine_id!r} has no {missing}"
        )
    pairs = paired_scores(
        store.database, machine_id, champion, challenger, start, end,
        limit_batches=max(limit, 10_000), last_n=limit,
    )  # fmt: skip
    return compare_pairs(
        machine_id, champion, challenger, pairs, start=start, end=end, limit=limit,
        max_points=max_points,
    )  # fmt: skip


def empty_comparison(
    machine_id: str, champion: int | None, challenger: int | None, reason: str
) -> ShadowComparisonOut:
    return ShadowComparisonOut(
        machine_id=machine_id,
        champion_version=champion,
        challenger_version=challenger,
        reason=reason,
        summary=summarize(np.zeros(0), np.zeros(0), np.zeros(0, bool), np.zeros(0, bool)),
        timestamps=[],
        champion_scores=[],
        challenger_scores=[],
        champion_thresholds=[],
        challenger_thresholds=[],
        champion_flags=[],
        challenger_flags=[],
    )


def compare_pairs(
    machine_id: str,
    champion: int,
    challenger: int,
    pairs: Sequence[Pair],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 10_000,
    max_points: int | None = None,
) -> ShadowComparisonOut:
    """Align (champion, challenger) batch pairs by reading: the newest ``limit`` readings
    in ``[start, end)`` in time order, summarized over all of them; with ``max_points``
    the series keep per time bucket each score's extremes and a flagged reading (of
    either), so no disagreement is lost from the picture."""
    pairs = [(a, b) for a, b in pairs if len(a.scores) == len(b.scores) == len(a.timestamps_us)]
    if not pairs:
        return empty_comparison(
            machine_id, champion, challenger, "no reading scored by both in range"
        )
    times = np.concatenate([a.timestamps_us for a, _ in pairs])
    champ = np.concatenate([a.scores for a, _ in pairs])
    chal = np.concatenate([b.scores for _, b in pairs])
    champ_t = np.concatenate([np.full(len(a.scores), a.threshold) for a, _ in pairs])
    chal_t = np.concatenate([np.full(len(b.scores), b.threshold) for _, b in pairs])
    keep = np.ones(len(times), dtype=bool)
    if start is not None:
        keep &= times >= int(start.timestamp() * 1e6)
    if end is not None:
        keep &= times < int(end.timestamp() * 1e6)
    rows = np.flatnonzero(keep)
    rows = rows[np.argsort(times[rows], kind="stable")][-limit:]  # batches may overlap
    if rows.size == 0:
        return empty_comparison(
            machine_id, champion, challenger, "no reading scored by both in range"
        )
    times, champ, chal, champ_t, chal_t = (a[rows] for a in (times, champ, chal, champ_t, chal_t))
    champ_f, chal_f = champ > champ_t, chal > chal_t
    summary = summarize(champ, chal, champ_f, chal_f)
    if max_points is not None and len(times) > max_points:
        drawn = downsample_indices(
            times, np.column_stack([champ, chal]), max_points, flagged=champ_f | chal_f
        )
        times, champ, chal, champ_t, chal_t, champ_f, chal_f = (
            a[drawn] for a in (times, champ, chal, champ_t, chal_t, champ_f, chal_f)
        )
    return ShadowComparisonOut(
        machine_id=machine_id,
        champion_version=champion,
        challenger_version=challenger,
        summary=summary,
        timestamps=us_to_datetimes(times),
        champion_scores=champ.tolist(),
        challenger_scores=chal.tolist(),
        champion_thresholds=champ_t.tolist(),
        challenger_thresholds=chal_t.tolist(),
        champion_flags=champ_f.tolist(),
        challenger_flags=chal_f.tolist(),
    )


def summarize(
    champion: np.ndarray,
    challenger: np.ndarray,
    champion_flags: np.ndarray,
    challenger_flags: np.ndarray,
) -> ShadowSummaryOut:
    """Counts, means and the correlation of two aligned score series.

    >>> s = summarize(np.array([1.0, 2, 3]), np.array([2.0, 4, 7]),
    ...               np.array([False, True, True]), np.array([False, False, True]))
    >>> (s.n_compared, s.champion_flagged, s.challenger_flagged, s.disagreements)
    (3, 2, 1, 1)
    >>> round(s.correlation or 0, 3), s.challenger_mean
    (0.993, 4.333333333333333)
    """
    n = len(champion)
    finite = np.isfinite(champion) & np.isfinite(challenger)
    a, b = champion[finite], challenger[finite]
    correlation = None
    if len(a) >= 2 and np.std(a) > 0 and np.std(b) > 0:
        correlation = float(np.corrcoef(a, b)[0, 1])
    return ShadowSummaryOut(
        n_compared=n,
        champion_flagged=int(np.count_nonzero(champion_flags)),
        challenger_flagged=int(np.count_nonzero(challenger_flags)),
        disagreements=int(np.count_nonzero(champion_flags != challenger_flags)),
        champion_mean=float(a.mean()) if len(a) else None,
        challenger_mean=float(b.mean()) if len(b) else None,
        correlation=correlation,
    )
