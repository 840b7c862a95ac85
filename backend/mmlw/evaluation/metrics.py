"""SKAB scoring: point-wise F1/FAR/MAR and the NAB changepoint score, numpy-vectorised.

Point metrics (micro-averaged: counts are summed over all files first)::

    F1   = TP / (TP + (FP + FN) / 2)
    FAR% = 100 * FP / (FP + TN)
    MAR% = 100 * FN / (FN + TP)

NAB changepoint score, as in SKAB's ``core/metrics.py`` (TSAD):

* every true changepoint ``cp`` gets the window ``[cp, cp + width]`` (time, default
  60 s, closed at both ends); where window ``i`` ends at or after window ``i+1`` starts,
  the later window is cut to start at window ``i``'s end ("cut right window");
* in each window only the **first** predicted point counts, as a TP, scoring
  ``s(p) = A_fp + (A_tp - A_fp) / 2 * (1 - tanh(x) / tanh(pi / 2))`` with
  ``x = -pi/2 + pi * k / 999`` and ``k = min(int(p * 1000), 999)``, ``p`` being the
  relative position of the prediction in the window (0 at its start, 1 at its end):
  ``A_tp`` at the start falling smoothly to ``A_fp`` at the end;
* a window without a prediction scores ``A_fn`` (a "missed CP");
* a predicted point outside every window is an FP and scores ``A_fp``;
* raw scores are summed over files, then ``100 * (S - S_null) / (S_perfect - S_null)``
  with ``S_perfect = n_windows * A_tp`` and ``S_null = n_windows * A_fn``.

Profiles (A_tp, A_fp, A_fn): Standard (1, -0.11, -1), LowFP (1, -0.22, -1),
LowFN (1, -0.11, -2). (SKAB uses this tanh curve, not original NAB's scaled sigmoid.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "NAB_PROFILES",
    "NabCounts",
    "PointCounts",
    "classification_metrics",
    "detection_windows",
    "nab_counts",
    "nab_scores",
    "point_counts",
    "point_metrics",
    "runs",
    "tp_reward",
]

NAB_PROFILES: Mapping[str, tuple[float, float, float]] = {
    "standard": (1.0, -0.11, -1.0),
    "lowfp": (1.0, -0.22, -1.0),
    "lowfn": (1.0, -0.11, -2.0),
}
_DETAIL = 1000


@dataclass(frozen=True)
class PointCounts:
    """Confusion counts of 0/1 predictions against 0/1 labels; ``+`` sums them."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __add__(self, other: PointCounts) -> PointCounts:
        return PointCounts(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )


def point_counts(labels: np.ndarray, flags: np.ndarray) -> PointCounts:
    """TP/FP/FN/TN of ``flags`` vs ``labels`` (both 0/1 arrays of one length)."""
    y = np.asarray(labels).astype(bool)
    p = np.asarray(flags).astype(bool)
    if y.shape != p.shape:
        raise ValueError(f"labels and flags differ in shape: {y.shape} vs {p.shape}")
    return PointCounts(
        tp=int(np.sum(y & p)),
        fp=int(np.sum(~y & p)),
        fn=int(np.sum(y & ~p)),
        tn=int(np.sum(~y & ~p)),
    )


def point_metrics(counts: PointCounts) -> dict[str, float]:
    """SKAB's F1, FAR % and MAR % (0 where a denominator is 0)."""
    tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
    return {
        "f1": tp / (tp + (fp + fn) / 2) if tp + fp + fn else 0.0,
        "far": 100.0 * fp / (fp + tn) if fp + tn else 0.0,
        "mar": 100.0 * fn / (fn + tp) if fn + tp else 0.0,
    }


def tp_reward(position: np.ndarray | float, a_tp: float, a_fp: float) -> np.ndarray:
    """Reward of a first detection at relative ``position`` in [0, 1] of its window."""
    pos = np.clip(np.asarray(position, dtype=np.float64), 0.0, 1.0)
    k = np.minimum((pos * _DETAIL).astype(np.int64), _DETAIL - 1)
    x = -np.pi / 2 + np.pi * k / (_DETAIL - 1)
    return a_fp + (a_tp - a_fp) / 2 * (1.0 - np.tanh(x) / np.tanh(np.pi / 2))


def detection_windows(
    times_s: np.ndarray, changepoints: np.ndarray, width_s: float = 60.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` in seconds of the right-hand windows, later window cut on overlap."""
    t = np.asarray(times_s, dtype=np.float64)
    starts = t[np.asarray(changepoints).astype(bool)].copy()
    ends = starts + float(width_s)
    for i in range(len(starts) - 1):  # sequential by definition; a handful per file
        if ends[i] >= starts[i + 1]:
            starts[i + 1] = ends[i]
    return starts, ends


@dataclass(frozen=True)
class NabCounts:
    """Per-profile raw NAB scores plus window/miss/FP counts; ``+`` sums files."""

    raw: dict[str, float] = field(default_factory=lambda: dict.fromkeys(NAB_PROFILES, 0.0))
    windows: int = 0
    missed: int = 0
    false_positives: int = 0

    def __add__(self, other: NabCounts) -> NabCounts:
        return NabCounts(
            raw={k: self.raw[k] + other.raw[k] for k in NAB_PROFILES},
            windows=self.windows + other.windows,
            missed=self.missed + other.missed,
            false_positives=self.false_positives + other.false_positives,
        )


def nab_counts(
    times_s: np.ndarray,
    true_cp: np.ndarray,
    pred_cp: np.ndarray,
    width_s: float = 60.0,
    profiles: Mapping[str, tuple[float, float, float]] = NAB_PROFILES,
) -> NabCounts:
    """Raw NAB scores of one file's predicted changepoints (0/1 per row, times in seconds)."""
    t = np.asarray(times_s, dtype=np.float64)
    starts, ends = detection_windows(t, true_cp, width_s)
    pred_t = np.sort(t[np.asarray(pred_cp).astype(bool)])
    hit = np.zeros(len(starts), dtype=bool)
    position = np.zeros(len(starts))
    n_fp = 0
    if len(pred_t):
        first = np.searchsorted(pred_t, starts, side="left")
        idx = np.minimum(first, len(pred_t) - 1)
        hit = (first < len(pred_t)) & (pred_t[idx] <= ends)
        length = ends - starts
        position = np.divide(
            pred_t[idx] - starts, length, out=np.zeros_like(length), where=length > 0
        )
        inside = np.zeros(len(pred_t), dtype=bool)
        if len(starts):
            # inside iff within the last window that starts at or before the point
            j = np.searchsorted(starts, pred_t, side="right") - 1
            inside = (j >= 0) & (pred_t <= ends[np.maximum(j, 0)])
        n_fp = int(np.sum(~inside))
    n_missed = int(np.sum(~hit))
    raw = {}
    for name, (a_tp, a_fp, a_fn) in profiles.items():
        rewards = tp_reward(position[hit], a_tp, a_fp) if hit.any() else np.zeros(0)
        raw[name] = float(rewards.sum() + a_fp * n_fp + a_fn * n_missed)
    return NabCounts(raw=raw, windows=len(starts), missed=n_missed, false_positives=n_fp)


def nab_scores(
    counts: NabCounts | Iterable[NabCounts],
    profiles: Mapping[str, tuple[float, float, float]] = NAB_PROFILES,
) -> dict[str, float]:
    """Normalised ``nab_<profile>`` (perfect 100, silent 0) and missed/FP/true CP counts."""
    total = counts if isinstance(counts, NabCounts) else sum(counts, NabCounts())
    out: dict[str, float] = {}
    for name, (a_tp, _a_fp, a_fn) in profiles.items():
        perfect, null = total.windows * a_tp, total.windows * a_fn
        out[f"nab_{name}"] = (
            100.0 * (total.raw[name] - null) / (perfect - null) if total.windows else 0.0
        )
    out["missed_cp"] = float(total.missed)
    out["fp_cp"] = float(total.false_positives)
    out["true_cp"] = float(total.windows)
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, stop)`` of each run of true (nonzero) values, ``stop`` exclusive.

    >>> runs(np.array([0, 1, 1, 0, 1]))
    [(1, 3), (4, 5)]
    """
    edges = np.diff(np.concatenate([[0], np.asarray(mask).astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


def classification_metrics(labels: np.ndarray, flags: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1, false-alarm and missed-alarm rates of flags vs 0/1 labels."""
    counts = point_counts(labels, flags)
    tp, fp, fn, tn = counts.tp, counts.fp, counts.fn, counts.tn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "far": fp / (fp + tn) if fp + tn else 0.0,
        "mar": fn / (fn + tp) if fn + tp else 0.0,
    }
