"""``mmlw evaluate --mode stream`` replay (mmlw.evaluation.stream) on small synthetic
folders: detections are alert onsets, nothing in the learning period, the data file's
exact timestamps, per-file failures isolated, batch-size invariant scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmlw.detectors.catalog import DETECTORS
from mmlw.detectors.default import DEFAULT_DETECTOR
from mmlw.detectors.zscore import RobustZScoreDetector
from mmlw.evaluation.datasets import load_dataset
from mmlw.evaluation.nab import probation_length
from mmlw.evaluation.stream import (
    MIN_LEARNING_ROWS,
    SKAB_LEARNING_ROWS,
    replay_file,
    score_rules,
    stream_evaluate,
    summary_table,
)

N = 1000
STRETCH = slice(600, 700)  # a long anomalous stretch: one onset, not 100 detections


def _series(n: int = N, seed: int = 0, *, spike: float = 50.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = 10.0 + rng.normal(size=n)
    values[STRETCH] += spike
    return values


def _nab_folder(root: Path, files: dict[str, tuple[list[str], np.ndarray]]) -> Path:
    """``<root>/<key>`` = ``timestamp,value`` CSVs and ``labels.json`` (window on STRETCH)."""
    labels = {}
    for key, (stamps, values) in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            "timestamp,value",
            *(f"{t},{float(v)!r}" for t, v in zip(stamps, values, strict=True)),
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        n = len(stamps)
        labels[key] = (
            [[stamps[STRETCH.start], stamps[STRETCH.stop - 1]]] if n > STRETCH.stop else []
        )
    (root / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    return root


def _stamps(n: int, fmt: str = "%Y-%m-%d %H:%M:%S", freq: str = "5min") -> list[str]:
    return list(pd.date_range("2024-03-01", periods=n, freq=freq).strftime(fmt))


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"timestamp": str}, keep_default_na=False)


def test_nab_layout_detections_are_onsets_with_the_data_files_timestamps(tmp_path: Path) -> None:
    odd = _stamps(N, "%Y/%m/%d %H:%M:%S.000")  # not pandas' own format: copied as text
    data = _nab_folder(
        tmp_path / "nab",
        {"cat/a.csv": (_stamps(N), _series()), "cat/b.csv": (odd, _series(seed=1))},
    )
    out = tmp_path / "out"
    (summary,) = stream_evaluate(data, out, [("robust_zscore", {})])

    learn = probation_length(N)
    for key, stamps in (("cat/a.csv", _stamps(N)), ("cat/b.csv", odd)):
        written = _read(out / "detections" / key)
        assert list(written.columns) == ["timestamp", "anomaly_score"]
        assert written["timestamp"].tolist() == stamps  # string-identical, in file order
        det = written["anomaly_score"].to_numpy()
        assert set(det) <= {0, 1}
        assert not det[:learn].any()
        onsets = np.flatnonzero(det)
        # the 100-row stretch is one alert: one detection, within a batch of its start
        assert len(onsets) == 1
        assert STRETCH.start <= onsets[0] < STRETCH.start + 10
    for f in summary.files:
        assert f.error is None and f.rows == N and f.learning_rows == learn
        assert f.detections == 1 and f.flagged >= 100
        assert f.alerts == 2  # both default rules fire on that row: still one detection
    recorded = json.loads((out / "summary.json").read_text())
    scores = recorded["detectors"]["robust_zscore"]["scores"]
    assert scores["standard"] > 99  # detected within a batch of each window's start
    assert "robust_zscore" in summary_table([summary], "nab")


def _skab_folder(root: Path, n: int = 700) -> tuple[Path, list[str]]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n, 2)) + np.array([5.0, -2.0])
    anomaly = np.zeros(n)
    anomaly[500:600] = 1.0
    X[500:600] += 20.0
    cp = np.zeros(n)
    cp[[500, 600]] = 1.0
    stamps = _stamps(n, freq="s")
    frame = pd.DataFrame({"datetime": stamps, "s1": X[:, 0], "s2": X[:, 1]})
    frame["anomaly"], frame["changepoint"] = anomaly, cp
    (root / "valve").mkdir(parents=True)
    frame.to_csv(root / "valve" / "0.csv", sep=";", index=False)
    return root, stamps


def test_skab_layout_learns_on_400_rows_and_reports_skab_metrics(tmp_path: Path) -> None:
    data, stamps = _skab_folder(tmp_path / "skab")
    out = tmp_path / "out"
    (summary,) = stream_evaluate(data, out, [("pca", {})])

    written = _read(out / "detections" / "valve" / "0.csv")
    assert written["timestamp"].tolist() == stamps
    det = written["anomaly_score"].to_numpy()
    assert not det[:SKAB_LEARNING_ROWS].any()
    onsets = np.flatnonzero(det)
    assert len(onsets) == 1 and 500 <= onsets[0] < 510
    (f,) = summary.files
    assert f.learning_rows == SKAB_LEARNING_ROWS and f.error is None
    # rows under a firing alert vs labels: all 100 anomalous rows; after them only the
    # rule's keep_firing_for (30 s, one reading a second) and the batch's rounding
    assert summary.scores["tp"] == 100 and summary.scores["mar"] == pytest.approx(0.0)
    assert 0 < summary.scores["fp"] <= 30 + 10
    # changepoints are both edges of the alerting: the onset early in the first 60 s
    # window, the all-clear (the rule's 30 s keep_firing_for after the fault) in the
    # second window's second half; each alone would score 40-50
    assert summary.scores["missed_cp"] == 0 and summary.scores["fp_cp"] == 0
    assert 80 < summary.scores["nab_standard"] < 90


def test_the_all_clear_is_the_last_row_of_the_batch_after_which_nothing_fires(
    tmp_path: Path,
) -> None:
    data, _ = _skab_folder(tmp_path / "skab")
    (file,) = load_dataset(data).files
    result = replay_file(file.frame, SKAB_LEARNING_ROWS, "pca")
    (onset,) = np.flatnonzero(result.detections)
    (clear,) = np.flatnonzero(result.clears)
    assert (clear + 1 - SKAB_LEARNING_ROWS) % 10 == 0  # a batch's last row
    assert result.alerting[onset : clear - 9].all()  # firing after every batch until then
    assert not result.alerting[clear - 9 :].any()
    assert 600 + 20 <= clear < 600 + 30 + 20  # keep_firing_for 30 s after the fault, +- batches


class _Boom(RobustZScoreDetector):
    """Fails to fit on any series holding the marker value."""

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> _Boom:
        if np.any(np.asarray(X) == -12345.0):
            raise ValueError("boom: the marker")
        return super().fit(X)  # type: ignore[return-value]


def test_a_failing_file_is_reported_and_the_others_still_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(DETECTORS, "boom", _Boom)  # type: ignore[index]
    marked = _series(seed=2)
    marked[10] = -12345.0
    short = 100  # probation 15 rows: too short to learn
    data = _nab_folder(
        tmp_path / "nab",
        {
            "c/bad.csv": (_stamps(N), marked),
            "c/good.csv": (_stamps(N), _series()),
            "c/short.csv": (_stamps(short), _series(short)),
        },
    )
    out = tmp_path / "out"
    seen: list[str] = []
    (summary,) = stream_evaluate(
        data, out, [("boom", {})], on_file=lambda _d, f: seen.append(f.file)
    )

    assert seen == ["c/bad.csv", "c/good.csv", "c/short.csv"]
    by_file = {f.file: f for f in summary.files}
    assert by_file["c/bad.csv"].error == "ValueError: boom: the marker"
    assert "learning period too short" in str(by_file["c/short.csv"].error)
    assert str(MIN_LEARNING_ROWS) in str(by_file["c/short.csv"].error)
    assert by_file["c/good.csv"].error is None and by_file["c/good.csv"].detections == 1
    for key, n in (("c/bad.csv", N), ("c/short.csv", short)):
        written = _read(out / "detections" / key)
        assert len(written) == n and not written["anomaly_score"].any()
        assert by_file[key].detections == 0
    recorded = json.loads((out / "summary.json").read_text())["detectors"]["boom"]
    assert recorded["errors"] == 2
    assert "boom: the marker" in summary_table([summary], "nab")
    # the failing files count as misses; the good one's window is still scored
    assert recorded["scores"]["detected_windows"] == 1
    assert recorded["scores"]["missed_windows"] == 1


def _frame(n: int = 3000) -> pd.DataFrame:
    """Two sensors (a cycle, noise) with two long anomalous stretches, 5-min steps."""
    rng = np.random.default_rng(7)
    t = np.arange(n)
    X = np.column_stack([np.sin(2 * np.pi * t / 288), 3 + rng.normal(size=n)])
    X += 0.1 * rng.normal(size=X.shape)
    X[1200:1400, 1] += 30.0
    X[2200:2350, 0] += 30.0
    index = pd.date_range("2024-01-01", periods=n, freq="5min")
    return pd.DataFrame(X, index=index, columns=["a", "b"])


BATCHES = (1, 10, 100)


@pytest.mark.parametrize(
    ("detector", "params"),
    [("robust_zscore", {"smoothing": 0.3}), ("pca_temporal", {}), ("level_change", {})],
)
def test_scores_do_not_depend_on_the_batch_size(detector: str, params: dict[str, object]) -> None:
    frame, learn = _frame(), 450
    runs = {b: replay_file(frame, learn, detector, params=params, batch_size=b) for b in BATCHES}
    base = runs[1]
    assert np.isnan(base.scores[:learn]).all() and not base.detections[:learn].any()
    for run in runs.values():
        np.testing.assert_allclose(run.scores[learn:], base.scores[learn:], rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(run.flags, base.flags)
        assert run.threshold == base.threshold


@pytest.mark.parametrize(
    ("detector", "params"), [("robust_zscore", {"smoothing": 0.3}), ("pca_temporal", {})]
)
def test_onsets_move_by_less_than_a_batch(detector: str, params: dict[str, object]) -> None:
    """Alerts are evaluated after each batch, so an onset is reported at the end of the
    batch it happens in: at most ``b - 1`` rows later than with one reading per batch
    (here two long stretches, so no alert starts and ends inside one batch)."""
    frame, learn = _frame(), 450
    runs = {b: replay_file(frame, learn, detector, params=params, batch_size=b) for b in BATCHES}
    fine = np.flatnonzero(runs[1].detections)
    assert len(fine) >= 2
    assert {int(o) // 1000 for o in fine} == {1, 2}  # an onset in each stretch
    for b in BATCHES[1:]:
        coarse = np.flatnonzero(runs[b].detections)
        assert np.all((coarse - learn + 1) % b == 0)  # only where a batch ends
        for c in coarse:  # each coarse onset follows a fine one within its batch
            assert np.any((fine <= c) & (c - fine < b)), (b, c, fine)
        for f in fine:  # each fine onset is reported by the end of its batch
            assert np.any((coarse >= f) & (coarse - f < b)), (b, f, coarse)


def test_no_look_ahead_a_truncated_series_replays_the_same() -> None:
    frame, learn = _frame(), 450
    full = replay_file(frame, learn, "robust_zscore", batch_size=10)
    cut = 1305  # inside an anomalous stretch, not on a batch boundary
    part = replay_file(frame.iloc[:cut], learn, "robust_zscore", batch_size=10)
    whole_batches = learn + (cut - learn) // 10 * 10
    np.testing.assert_array_equal(part.scores[learn:cut], full.scores[learn:cut])
    np.testing.assert_array_equal(part.detections[:whole_batches], full.detections[:whole_batches])


def test_learning_period_too_short_or_nothing_left_raises() -> None:
    frame = _frame()[:100]
    with pytest.raises(ValueError, match="learning period too short"):
        replay_file(frame, MIN_LEARNING_ROWS - 1, "pca")
    with pytest.raises(ValueError, match="nothing left to score"):
        replay_file(frame, 100, "pca")
    with pytest.raises(ValueError, match="batch_size"):
        replay_file(frame, 50, "pca", batch_size=0)


def test_only_scores_rules_decide() -> None:
    rules = score_rules()
    assert rules and all(r.condition.kind == "scores" for r in rules)
    frame = _frame()
    silent = replay_file(frame, 450, "robust_zscore", rules=[])
    assert silent.alerts == 0 and not silent.detections.any() and silent.flags.any()


def test_several_detectors_write_one_folder_each_and_one_summary(tmp_path: Path) -> None:
    data = _nab_folder(tmp_path / "nab", {"c/a.csv": (_stamps(N), _series())})
    out = tmp_path / "out"
    summaries = stream_evaluate(data, out, [("robust_zscore", {}), ("pca", {})])
    assert [s.detector for s in summaries] == ["robust_zscore", "pca"]
    for name in ("robust_zscore", "pca"):
        assert len(_read(out / name / "detections" / "c" / "a.csv")) == N
    assert not (out / "detections").exists()
    recorded = json.loads((out / "summary.json").read_text())
    assert list(recorded["detectors"]) == ["robust_zscore", "pca"]
    assert recorded["batch_size"] == 10 and recorded["layout"] == "nab"


def test_cli_stream_mode_options(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from mmlw.cli import main

    data = _nab_folder(tmp_path / "nab", {"c/a.csv": (_stamps(N), _series())})
    env = {"MMLW_DATA_DIR": str(tmp_path / "data")}
    base = ["evaluate", "--dataset", str(data), "--out", str(tmp_path / "out")]
    run = CliRunner().invoke(main, [*base, "--mode", "stream", "--batch-size", "5"], env=env)
    assert run.exit_code == 0, run.output
    assert "c/a.csv: 1000 rows, 1 detections" in run.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["detectors"]) == [DEFAULT_DETECTOR] and summary["batch_size"] == 5
    wrong = CliRunner().invoke(main, [*base, "--mode", "stream", "--smoothing", "k_of_n"], env=env)
    assert wrong.exit_code == 2 and "--smoothing: not used with --mode stream" in wrong.output
    wrong = CliRunner().invoke(main, [*base, "--batch-size", "5", "--no-mlflow"], env=env)
    assert wrong.exit_code == 2 and "--batch-size: not used with --mode batch" in wrong.output
    unknown = CliRunner().invoke(main, [*base, "--mode", "stream", "--detector", "nope"], env=env)
    assert unknown.exit_code != 0 and "unknown 'nope'" in unknown.output
