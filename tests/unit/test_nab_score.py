"""NAB scoring (mmlw.evaluation.nab): hand-computed cases and agreement with the reference.

The reference is ``../shared/tools/nab_score.py``, an independent implementation checked
against NAB's published results; both must agree to 1e-6 on the nab-dev files.
"""

from __future__ import annotations

import doctest
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from mmlw.evaluation import nab
from mmlw.evaluation.nab import (
    PROFILES,
    NabProfile,
    load_nab_labels,
    nab_windows,
    probation_length,
    score_dataset,
    score_detection_folder,
    score_file,
    score_file_detail,
)
from tests.conftest import reference_nab_scores

STD = PROFILES["standard"]
LOW_FP = PROFILES["reward_low_FP_rate"]
LOW_FN = PROFILES["reward_low_FN_rate"]

# 100 rows at 5 min: probation is 15 rows; one window covering rows 50..59 (W = 10)
N = 100
TS = pd.date_range("2024-01-01", periods=N, freq="5min")
WINDOW = [(TS[50], TS[59])]


def s(x: float) -> float:
    """NAB's scaled sigmoid, written out independently."""
    return -1.0 if x > 3 else 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def detect(*rows: int, n: int = N) -> npt.NDArray[np.bool_]:
    out = np.zeros(n, dtype=bool)
    out[list(rows)] = True
    return out


def test_doctests() -> None:
    failures, tried = doctest.testmod(nab, verbose=False)
    assert tried > 0 and failures == 0


def test_profiles_are_nabs() -> None:
    assert [(p.tp, p.fp, p.fn) for p in PROFILES.values()] == [
        (1.0, 0.11, 1.0),
        (1.0, 0.22, 1.0),
        (1.0, 0.11, 2.0),
    ]


@pytest.mark.parametrize(("n", "expected"), [(100, 15), (4032, 604), (5000, 750), (20000, 750)])
def test_probation_length(n: int, expected: int) -> None:
    assert probation_length(n) == expected


def test_detection_at_window_start_scores_tp() -> None:
    for profile in PROFILES.values():
        assert score_file(TS, detect(50), WINDOW, profile) == pytest.approx(profile.tp)


def test_detection_later_in_window_scores_less() -> None:
    expected = s(-5 / 10) / s(-1)  # row 55: R - i + 1 = 5 of W = 10
    assert score_file(TS, detect(55), WINDOW, STD) == pytest.approx(expected)
    assert 0 < expected < 1


def test_only_first_detection_in_window_counts() -> None:
    assert score_file(TS, detect(52, 53, 58), WINDOW, STD) == pytest.approx(s(-8 / 10) / s(-1))
    r = score_file_detail(TS, detect(52, 53, 58), WINDOW)
    assert (r.detected_windows, r.missed_windows, r.fp_rows) == (1, 0, 0)


def test_missed_window_scores_fn() -> None:
    assert score_file(TS, np.zeros(N), WINDOW, STD) == -1.0
    assert score_file(TS, np.zeros(N), WINDOW, LOW_FN) == -2.0


def test_far_false_positive_scores_fp_weight() -> None:
    # before any window, and > 3 widths after one: the full fp weight (plus the miss)
    assert score_file(TS, detect(20), WINDOW, STD) == pytest.approx(-0.11 - 1.0)
    assert score_file(TS, detect(20), WINDOW, LOW_FP) == pytest.approx(-0.22 - 1.0)
    assert score_file(TS, detect(50, 90), WINDOW, STD) == pytest.approx(1.0 - 0.11)


def test_false_positive_right_after_window_costs_less() -> None:
    near = score_file(TS, detect(50, 60), WINDOW, STD) - 1.0
    assert near == pytest.approx(0.11 * s(1 / 9))  # x = (i - R) / (W - 1)
    assert -0.11 < near < 0


def test_no_windows_every_detection_is_a_full_false_positive() -> None:
    r = score_file_detail(TS, detect(20, 40, 99), [])
    assert (r.windows, r.fp_rows) == (0, 3)
    assert r.raw(STD) == pytest.approx(-0.33)


def test_probation_detections_ignored() -> None:
    r = score_file_detail(TS, detect(0, 5, 14), WINDOW)
    assert (r.probation_rows, r.fp_rows, r.detected_windows) == (15, 0, 0)
    assert r.raw(STD) == -1.0
    assert score_file(TS, detect(15), WINDOW, STD) == pytest.approx(-1.11)


def test_window_inside_probation_counts_only_for_perfect() -> None:
    windows = [(TS[2], TS[8]), (TS[50], TS[59])]
    r = score_file_detail(TS, detect(3, 50), windows)
    assert (r.windows, r.scored_windows, r.detected_windows, r.missed_windows) == (2, 1, 1, 0)
    assert r.raw(STD) == pytest.approx(1.0)
    assert (r.null(STD), r.perfect(STD)) == (-1.0, 2.0)


def test_windows_by_time_range_and_validation() -> None:
    assert nab_windows(TS, [("2024-01-01 00:04", "2024-01-01 00:15")]).tolist() == [[1, 3]]
    with pytest.raises(ValueError, match="no row"):
        nab_windows(TS, [("2025-01-01", "2025-01-02")])
    with pytest.raises(ValueError, match="overlap"):
        nab_windows(TS, [(TS[10], TS[20]), (TS[20], TS[30])])


def test_score_dataset_normalises_over_files() -> None:
    labels = {"a/x.csv": WINDOW, "a/y.csv": WINDOW, "b/z.csv": []}
    dets = {
        "a/x.csv": pd.Series(detect(50), index=TS),
        "a/y.csv": pd.Series(np.zeros(N), index=TS),
        "b/z.csv": pd.Series(detect(30), index=TS),
    }
    res = score_dataset(dets, labels)
    std = res.scores["standard"]
    assert std.raw == pytest.approx(1 - 1 - 0.11)
    assert (std.null, std.perfect) == (-2.0, 2.0)
    assert std.normalised == pytest.approx(100 * (2 - 0.11) / 4)
    assert res.by_category()["b"]["standard"] is None
    assert res.files["b/z.csv"].fp_rows == 1


# --------------------------------------------------------------------------------------
# agreement with the reference scorer on nab-dev
# --------------------------------------------------------------------------------------

Rows = list[tuple[int, int]]
Maker = Callable[[int, Rows, np.random.Generator], npt.NDArray[np.float64]]


def _mark(n: int, rows: list[int]) -> npt.NDArray[np.float64]:
    out = np.zeros(n)
    kept = [r for r in rows if 0 <= r < n]
    out[kept] = 1.0
    return out


def _after_windows(n: int, wins: Rows) -> npt.NDArray[np.float64]:
    # right after, a little later, ~2 and ~4 widths later: every fp weight regime
    rows = []
    for left, right in wins:
        width = right - left + 1
        rows += [right + 1, right + 5, right + 2 * width, right + 4 * width]
    return _mark(n, rows)


DETECTION_SETS: dict[str, Maker] = {
    "none": lambda n, w, g: np.zeros(n),
    "all_ones": lambda n, w, g: np.ones(n),
    "random_1pct": lambda n, w, g: (g.random(n) < 0.01).astype(float),
    "window_starts": lambda n, w, g: _mark(n, [a for a, _ in w]),
    "window_ends": lambda n, w, g: _mark(n, [b for _, b in w]),
    "just_before": lambda n, w, g: _mark(n, [a - 1 for a, _ in w]),
    "just_after": lambda n, w, g: _mark(n, [b + 1 for _, b in w]),
    "after_windows": lambda n, w, g: _after_windows(n, w),
    "uniform_scores": lambda n, w, g: g.random(n),  # scores in [0, 1), threshold 0.5
}


@pytest.fixture(scope="module")
def nab_files(nab_dir: Path) -> dict[str, tuple[pd.Series, Rows]]:
    """Per file: the data's timestamp strings and the windows' row bounds (exact match)."""
    raw = json.loads((nab_dir / "labels.json").read_text())
    out: dict[str, tuple[pd.Series, Rows]] = {}
    for key, wins in sorted(raw.items()):
        stamps = pd.read_csv(nab_dir / key, usecols=["timestamp"])["timestamp"]
        parsed = pd.to_datetime(stamps).to_numpy()
        rows = []
        for a, b in wins:
            (left,) = np.flatnonzero(parsed == np.datetime64(pd.Timestamp(a)))
            (right,) = np.flatnonzero(parsed == np.datetime64(pd.Timestamp(b)))
            rows.append((int(left), int(right)))
        out[key] = (stamps, rows)
    return out


def test_load_nab_labels(nab_dir: Path, nab_files: dict[str, tuple[pd.Series, Rows]]) -> None:
    labels = load_nab_labels(nab_dir)
    assert len(labels) == 34 and sum(len(w) for w in labels.values()) == 67
    key = "realAdExchange/exchange-2_cpm_results.csv"
    ts = pd.to_datetime(nab_files[key][0])
    assert nab_windows(ts, labels[key]).tolist() == [list(r) for r in nab_files[key][1]]


@pytest.mark.parametrize("name", list(DETECTION_SETS))
def test_agrees_with_reference_scorer(
    name: str,
    nab_dir: Path,
    nab_reference_scorer: Path,
    nab_files: dict[str, tuple[pd.Series, Rows]],
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(20240611)
    for key, (stamps, rows) in nab_files.items():
        scores = DETECTION_SETS[name](len(stamps), rows, rng)
        out = tmp_path / key
        out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": stamps, "anomaly_score": scores}).to_csv(out, index=False)

    ref = reference_nab_scores(nab_reference_scorer, nab_dir, tmp_path)

    ours = score_detection_folder(nab_dir, tmp_path, threshold=0.5)
    assert len(ours.files) == ref["files"] == 34
    for profile in PROFILES.values():
        p = profile.name
        assert ours.scores[p].normalised == pytest.approx(ref[p], abs=1e-6), p
        got = ours.scores[p]
        want = ref["raw"][p]
        assert (got.raw, got.null, got.perfect) == pytest.approx(
            (want["raw"], want["null"], want["perfect"]), abs=1e-6
        )
        files = ours.files.values()
        assert sum(f.detected_windows for f in files) == want["detected_windows"]
        assert sum(f.missed_windows for f in files) == want["missed_windows"]
        assert sum(f.fp_rows for f in files) == want["fp_rows"]
        for cat, normalised in ours.by_category().items():
            assert normalised[p] == pytest.approx(ref["per_category"][cat][p], abs=1e-6)


def test_custom_profile_is_linear_in_weights() -> None:
    r = score_file_detail(TS, detect(20, 55, 61), WINDOW)
    custom = NabProfile("custom", tp=2.0, fp=0.5, fn=3.0)
    assert r.raw(custom) == pytest.approx(2 * r.tp_weight + 0.5 * r.fp_weight)
