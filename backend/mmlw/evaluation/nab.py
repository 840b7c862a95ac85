"""NAB (Numenta Anomaly Benchmark v1.1) scoring of 0/1 detections, numpy-vectorised.

The rules, as NAB's scorer applies them (and ``../shared/tools/nab_score.py``, the
independent reference this module is tested against):

* **Windows** are the labelled ``[start, end]`` time ranges; a window covers the rows whose
  timestamp lies in it (both ends included). Width ``W = R - L + 1`` rows.
* **Probation**: rows with index ``< min(floor(f * n), f * 5000)`` (``f = 0.15``: 15 % of
  the file, at most 750 rows) are not scored.
* **Inside a window** only the earliest scored detection counts, worth
  ``tp * s(-(R - i + 1) / W) / s(-1)`` (``1 * tp`` at the window's first row, decreasing
  along it); a window with scored rows but no detection costs ``-fn``. Later detections
  in the same window are ignored.
* **Outside every window** each detected row is worth ``fp * s(x)`` (negative), with
  ``x = (i - R_prev) / (W_prev - 1)`` from the end of the previous window, ``s(x) = -1``
  for ``x > 3``, and ``-1`` when no window precedes the row (or ``W_prev == 1``).
* ``s(x) = 2 / (1 + exp(5x)) - 1 = -tanh(5x / 2)``, the scaled sigmoid.
* **Normalised** score over a set of files: ``100 * (S - S_null) / (S_perfect - S_null)``
  with ``S_null = -fn * (windows having scored rows)`` (what never alarming earns) and
  ``S_perfect = tp * (all windows)``.

Profiles (tp, fp, fn; NAB's ``tnWeight`` is carried but unused by the score): standard
(1, 0.11, 1), reward_low_FP_rate (1, 0.22, 1), reward_low_FN_rate (1, 0.11, 2). Weights are
magnitudes: false positives and misses subtract.

A tiny example (100 rows, probation 15 rows, one window of 10 rows at rows 50..59):

>>> import numpy as np, pandas as pd
>>> ts = pd.date_range("2024-01-01", periods=100, freq="5min")
>>> windows = [(ts[50], ts[59])]
>>> det = np.zeros(100, dtype=bool)
>>> det[[50, 55, 90]] = True            # window start, later in window, far after
>>> round(score_file(ts, det, windows, PROFILES["standard"]), 6)   # 1 - 0.11
0.89
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from mmlw.evaluation.datasets import group_of

__all__ = [
    "PROBATION_FRACTION",
    "PROFILES",
    "FileResult",
    "NabProfile",
    "NabResult",
    "ProfileScore",
    "load_nab_labels",
    "nab_windows",
    "probation_length",
    "scaled_sigmoid",
    "score_dataset",
    "score_detection_folder",
    "score_file",
    "score_file_detail",
]

PROBATION_FRACTION = 0.15
_PROBATION_CAP_ROWS = 5000  # probation <= fraction * 5000 rows (750 at 15 %)
_FAR = 3.0  # beyond 3 window widths after a window a false positive costs the full fp

Window = tuple[pd.Timestamp, pd.Timestamp]
TimeLike = Any  # anything pd.Timestamp accepts


@dataclass(frozen=True)
class NabProfile:
    """An application profile: weight magnitudes of a TP, FP, FN (and unused TN)."""

    name: str
    tp: float
    fp: float
    fn: float
    tn: float = 1.0


PROFILES: Mapping[str, NabProfile] = {
    p.name: p
    for p in (
        NabProfile("standard", tp=1.0, fp=0.11, fn=1.0),
        NabProfile("reward_low_FP_rate", tp=1.0, fp=0.22, fn=1.0),
        NabProfile("reward_low_FN_rate", tp=1.0, fp=0.11, fn=2.0),
    )
}


def scaled_sigmoid(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """NAB's ``s(x) = 2 / (1 + e^{5x}) - 1`` (``= -tanh(2.5 x)``), ``-1`` where ``x > 3``.

    >>> scaled_sigmoid([-1.0, 0.5, 3.5]).round(4).tolist()
    [0.9866, -0.8483, -1.0]
    """
    arr = np.asarray(x, dtype=np.float64)
    return np.where(arr > _FAR, -1.0, -np.tanh(2.5 * arr))


def probation_length(n_rows: int, fraction: float = PROBATION_FRACTION) -> int:
    """Number of leading rows not scored: ``min(floor(fraction * n), fraction * 5000)``.

    >>> probation_length(100), probation_length(4032), probation_length(15902)
    (15, 604, 750)
    """
    limit = min(math.floor(fraction * n_rows), fraction * _PROBATION_CAP_ROWS)
    return max(0, math.ceil(limit))  # row i is scored iff i >= limit


def load_nab_labels(dataset_dir: str | os.PathLike[str]) -> dict[str, list[Window]]:
    """Read ``<dataset_dir>/labels.json``: ``{"<category>/<file>.csv": [(start, end), ...]}``."""
    path = Path(dataset_dir) / "labels.json"
    with path.open(encoding="utf-8") as fh:
        raw = json.load(fh)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object of window lists")
    return {
        str(key): [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in wins] for key, wins in raw.items()
    }


def _as_datetime64(timestamps: npt.ArrayLike | pd.Index) -> npt.NDArray[np.datetime64]:
    values = pd.to_datetime(pd.Index(np.asarray(timestamps)))
    if values.tz is not None:
        values = values.tz_convert("UTC").tz_localize(None)
    return np.asarray(values.values, dtype="datetime64[ns]")


def nab_windows(
    timestamps: npt.ArrayLike | pd.Index, windows: Iterable[tuple[TimeLike, TimeLike]]
) -> npt.NDArray[np.int64]:
    """Row bounds ``[[L, R], ...]`` (inclusive) of time windows on sorted ``timestamps``.

    A window covers the rows with ``start <= t <= end``; windows must each cover a row and
    must not overlap.

    >>> ts = pd.date_range("2024-01-01", periods=10, freq="h")
    >>> nab_windows(ts, [("2024-01-01 02:00", "2024-01-01 04:30")]).tolist()
    [[2, 4]]
    """
    t = _as_datetime64(timestamps)
    if len(t) > 1 and bool(np.any(t[1:] < t[:-1])):
        raise ValueError("timestamps must be sorted ascending")
    bounds = [(pd.Timestamp(a), pd.Timestamp(b)) for a, b in windows]
    if not bounds:
        return np.zeros((0, 2), dtype=np.int64)
    starts = _as_datetime64([a for a, _ in bounds])
    ends = _as_datetime64([b for _, b in bounds])
    left = np.searchsorted(t, starts, side="left").astype(np.int64)
    right = np.searchsorted(t, ends, side="right").astype(np.int64) - 1
    empty = right < left
    if empty.any():
        a, b = bounds[int(np.flatnonzero(empty)[0])]
        raise ValueError(f"window {a} .. {b} contains no row")
    order = np.argsort(left, kind="stable")
    rows = np.stack([left[order], right[order]], axis=1)
    if len(rows) > 1 and bool(np.any(rows[1:, 0] <= rows[:-1, 1])):
        raise ValueError("labelled windows overlap")
    return rows


@dataclass(frozen=True)
class FileResult:
    """Profile-independent outcome of one file; ``raw(profile)`` is its NAB score.

    ``tp_weight`` sums ``s(..)/s(-1)`` over the counted (earliest) detections in windows,
    ``fp_weight`` sums the (negative) ``s(x)`` of the detected rows outside windows.
    """

    n_rows: int
    probation_rows: int
    windows: int  # labelled windows (count towards S_perfect)
    scored_windows: int  # windows with rows after probation (count towards S_null)
    detected_windows: int  # TP
    missed_windows: int  # FN
    fp_rows: int  # FP: scored detected rows outside every window
    tp_weight: float
    fp_weight: float

    def raw(self, profile: NabProfile) -> float:
        return (
            profile.tp * self.tp_weight
            + profile.fp * self.fp_weight
            - profile.fn * self.missed_windows
        )

    def null(self, profile: NabProfile) -> float:
        return -profile.fn * self.scored_windows

    def perfect(self, profile: NabProfile) -> float:
        return profile.tp * self.windows


def score_file_detail(
    timestamps: npt.ArrayLike | pd.Index,
    detections: npt.ArrayLike,
    windows: Iterable[tuple[TimeLike, TimeLike]],
    probation_fraction: float = PROBATION_FRACTION,
) -> FileResult:
    """Counts and unit weights of one file's 0/1 (or boolean) ``detections``.

    >>> ts = pd.date_range("2024-01-01", periods=100, freq="5min")
    >>> r = score_file_detail(ts, np.isin(np.arange(100), [5, 52, 95]), [(ts[50], ts[59])])
    >>> r.probation_rows, r.detected_windows, r.missed_windows, r.fp_rows
    (15, 1, 0, 1)
    """
    det = np.asarray(detections)
    n = len(det)
    t = _as_datetime64(timestamps)
    if len(t) != n:
        raise ValueError("timestamps and detections differ in length")
    rows = nab_windows(t, windows)
    det = det.astype(bool) if det.dtype != bool else det
    probation = probation_length(n, probation_fraction)
    idx = np.arange(n)
    det = det & (idx >= probation)

    left, right = rows[:, 0], rows[:, 1]
    width = right - left + 1
    # index of the last window starting at or before each row (-1: none)
    k = np.searchsorted(left, idx, side="right") - 1
    has_prev = k >= 0
    kk = np.where(has_prev, k, 0)
    inside = has_prev & (idx <= right[kk]) if len(rows) else np.zeros(n, dtype=bool)

    hits = np.flatnonzero(det & inside)
    win_hit, first = np.unique(k[hits], return_index=True)
    earliest = hits[first]
    tp_units = scaled_sigmoid(-(right[k[earliest]] - earliest + 1) / width[k[earliest]])
    tp_weight = float(np.sum(tp_units / scaled_sigmoid(-1.0)))

    false = np.flatnonzero(det & ~inside)
    fk = k[false]
    fp_units = np.full(len(false), -1.0)
    near = fk >= 0
    near[near] = width[fk[near]] > 1
    if near.any():
        wk = fk[near]
        fp_units[near] = scaled_sigmoid((false[near] - right[wk]) / (width[wk] - 1))
    fp_weight = float(np.sum(fp_units))

    scored_windows = int(np.sum(right >= probation))
    return FileResult(
        n_rows=n,
        probation_rows=probation,
        windows=len(rows),
        scored_windows=scored_windows,
        detected_windows=len(win_hit),
        missed_windows=scored_windows - len(win_hit),
        fp_rows=len(false),
        tp_weight=tp_weight,
        fp_weight=fp_weight,
    )


def score_file(
    timestamps: npt.ArrayLike | pd.Index,
    detections: npt.ArrayLike,
    windows: Iterable[tuple[TimeLike, TimeLike]],
    profile: NabProfile = PROFILES["standard"],
    probation_fraction: float = PROBATION_FRACTION,
) -> float:
    """Raw NAB score of one file's 0/1 detections under ``profile``.

    >>> ts = pd.date_range("2024-01-01", periods=100, freq="5min")
    >>> score_file(ts, np.zeros(100), [(ts[50], ts[59])], PROFILES["reward_low_FN_rate"])
    -2.0
    """
    result = score_file_detail(timestamps, detections, windows, probation_fraction)
    return result.raw(profile)


@dataclass(frozen=True)
class ProfileScore:
    """Summed raw score, its null/perfect anchors and the normalised score (None: 0/0)."""

    raw: float
    null: float
    perfect: float

    @property
    def normalised(self) -> float | None:
        span = self.perfect - self.null
        return 100.0 * (self.raw - self.null) / span if span != 0 else None


def _aggregate(files: Iterable[FileResult], profile: NabProfile) -> ProfileScore:
    fs = list(files)
    return ProfileScore(
        raw=float(sum(f.raw(profile) for f in fs)),
        null=float(sum(f.null(profile) for f in fs)),
        perfect=float(sum(f.perfect(profile) for f in fs)),
    )


@dataclass(frozen=True)
class NabResult:
    """Scores over a set of files: per profile (``scores``) and per file (``files``)."""

    profiles: tuple[NabProfile, ...]
    files: Mapping[str, FileResult]
    scores: Mapping[str, ProfileScore] = field(init=False)

    def __post_init__(self) -> None:
        scores = {p.name: _aggregate(self.files.values(), p) for p in self.profiles}
        object.__setattr__(self, "scores", scores)

    def normalised(self) -> dict[str, float | None]:
        """``{profile name: normalised score}``."""
        return {name: s.normalised for name, s in self.scores.items()}

    def by_category(self) -> dict[str, dict[str, float | None]]:
        """Normalised scores per category (the key's first path part)."""
        cats: dict[str, list[FileResult]] = {}
        for key, f in self.files.items():
            cats.setdefault(group_of(key), []).append(f)
        return {
            c: {p.name: _aggregate(fs, p).normalised for p in self.profiles}
            for c, fs in sorted(cats.items())
        }

    def per_file_raw(self) -> dict[str, dict[str, float]]:
        return {k: {p.name: f.raw(p) for p in self.profiles} for k, f in self.files.items()}


def score_dataset(
    detections_by_file: Mapping[str, pd.Series],
    labels: Mapping[str, Sequence[tuple[TimeLike, TimeLike]]],
    profiles: Iterable[NabProfile] = tuple(PROFILES.values()),
    probation_fraction: float = PROBATION_FRACTION,
) -> NabResult:
    """Score files of detections: each a Series of 0/1 (or bool) indexed by timestamp.

    Only the given files are scored and normalised; each must have a key in ``labels``.

    >>> ts = pd.date_range("2024-01-01", periods=100, freq="5min")
    >>> det = pd.Series(np.isin(np.arange(100), [50]), index=ts)
    >>> res = score_dataset({"a/x.csv": det}, {"a/x.csv": [(ts[50], ts[59])]})
    >>> {k: round(v or 0.0, 6) for k, v in res.normalised().items()}
    {'standard': 100.0, 'reward_low_FP_rate': 100.0, 'reward_low_FN_rate': 100.0}
    """
    missing = sorted(set(detections_by_file) - set(labels))
    if missing:
        raise KeyError(f"no labels for {missing[0]!r} ({len(missing)} file(s))")
    files = {
        key: score_file_detail(s.index, s.to_numpy(), labels[key], probation_fraction)
        for key, s in sorted(detections_by_file.items())
    }
    return NabResult(profiles=tuple(profiles), files=files)


def score_detection_folder(
    dataset_dir: str | os.PathLike[str],
    detections_dir: str | os.PathLike[str],
    threshold: float = 0.5,
    profiles: Iterable[NabProfile] = tuple(PROFILES.values()),
    probation_fraction: float = PROBATION_FRACTION,
) -> NabResult:
    """Score ``detections_dir/<category>/<file>.csv`` (``timestamp,anomaly_score``).

    The layout the reference scorer reads: one row per data row, the data file's exact
    timestamps (checked against ``dataset_dir``); a row with ``anomaly_score >= threshold``
    is a detection. Every CSV must match a key of ``dataset_dir/labels.json``; files
    absent from the folder are not scored.
    """
    labels = load_nab_labels(dataset_dir)
    root = Path(detections_dir)
    paths = sorted(p for p in root.rglob("*.csv") if not p.name.startswith("."))
    detections: dict[str, pd.Series] = {}
    for path in paths:
        key = path.relative_to(root).as_posix()
        if key not in labels:
            raise ValueError(f"{path}: matches no key of the labels")
        frame = pd.read_csv(path)
        for col in ("timestamp", "anomaly_score"):
            if col not in frame.columns:
                raise ValueError(f"{path}: missing column {col!r}")
        ts = pd.to_datetime(frame["timestamp"])
        data_ts = pd.to_datetime(
            pd.read_csv(Path(dataset_dir) / key, usecols=["timestamp"])["timestamp"]
        )
        if len(ts) != len(data_ts) or not bool((ts.to_numpy() == data_ts.to_numpy()).all()):
            raise ValueError(f"{path}: timestamps differ from the data file's")
        scores = pd.to_numeric(frame["anomaly_score"], errors="raise").to_numpy(float)
        detections[key] = pd.Series(scores >= threshold, index=pd.DatetimeIndex(ts))
    if not detections:
        raise ValueError(f"no detection CSVs under {root}")
    return score_dataset(detections, labels, profiles, probation_fraction)
