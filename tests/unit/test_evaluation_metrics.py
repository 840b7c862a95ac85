"""Evaluation harness: metrics against hand-computed answers, loaders, the protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmlw.evaluation.datasets import detect_layout, load_dataset
from mmlw.evaluation.metrics import (
    NabCounts,
    detection_windows,
    nab_counts,
    nab_scores,
    point_counts,
    point_metrics,
    tp_reward,
)
from mmlw.evaluation.protocol import (
    ProtocolConfig,
    alarm_changepoints,
    changepoint_alarms,
    run_protocol,
    smooth_flags,
    training_threshold,
)

T = np.arange(300.0)  # one row per second


def _cp(*at: int) -> np.ndarray:
    cp = np.zeros(len(T), dtype=np.int8)
    cp[list(at)] = 1
    return cp


def _nab(pred_at: tuple[int, ...], true_at: tuple[int, ...] = (100,)) -> dict[str, float]:
    pred = _cp(*pred_at) if pred_at else np.zeros(len(T), dtype=np.int8)
    return nab_scores(nab_counts(T, _cp(*true_at), pred))


# -- point metrics ----------------------------------------------------------------------
def test_point_metrics_by_hand() -> None:
    counts = point_counts(np.array([1, 1, 0, 0, 1, 0]), np.array([1, 0, 1, 0, 1, 0]))
    assert (counts.tp, counts.fp, counts.fn, counts.tn) == (2, 1, 1, 2)
    m = point_metrics(counts)
    assert m["f1"] == pytest.approx(2 / 3)  # 2 / (2 + (1 + 1) / 2)
    assert m["far"] == pytest.approx(100 / 3)
    assert m["mar"] == pytest.approx(100 / 3)


def test_point_metrics_are_micro_averaged() -> None:
    a = point_counts(np.array([1, 1]), np.array([1, 1]))
    b = point_counts(np.array([0, 0, 0, 0]), np.array([1, 0, 0, 0]))
    m = point_metrics(a + b)  # TP 2, FP 1, FN 0, TN 3
    assert m == pytest.approx({"f1": 0.8, "far": 25.0, "mar": 0.0})


def test_flag_everything_and_null_detector() -> None:
    y = np.array([1, 0, 1, 1])
    assert point_metrics(point_counts(y, np.ones(4))) == pytest.approx(
        {"f1": 6 / 7, "far": 100.0, "mar": 0.0}
    )
    assert point_metrics(point_counts(y, np.zeros(4))) == {"f1": 0.0, "far": 0.0, "mar": 100.0}


# -- NAB --------------------------------------------------------------------------------
def test_tp_reward_falls_from_a_tp_to_a_fp() -> None:
    assert tp_reward(0.0, 1.0, -0.11) == pytest.approx(1.0)
    assert tp_reward(1.0, 1.0, -0.11) == pytest.approx(-0.11)
    assert tp_reward(0.5, 1.0, -0.11) == pytest.approx(0.445, abs=2e-3)  # tanh midpoint


def test_perfect_detector_scores_100_and_silent_detector_0() -> None:
    perfect = _nab((100,))
    assert perfect["nab_standard"] == pytest.approx(100.0)
    assert perfect["nab_lowfp"] == pytest.approx(100.0)
    assert perfect["nab_lowfn"] == pytest.approx(100.0)
    silent = _nab(())
    assert silent["nab_standard"] == 0.0 and silent["nab_lowfn"] == 0.0
    assert (silent["missed_cp"], silent["fp_cp"], silent["true_cp"]) == (1, 0, 1)


def test_late_detection_halfway_through_the_window() -> None:
    # window [100, 160]; detection at 130 = middle -> ~0.445; (0.445 + 1) / 2 = 72.25 %
    assert _nab((130,))["nab_standard"] == pytest.approx(72.25, abs=0.1)


def test_detection_at_window_end_scores_a_fp_but_is_no_fp() -> None:
    out = _nab((160,))
    assert out["nab_standard"] == pytest.approx(100 * (-0.11 + 1) / 2)  # 44.5
    assert out["fp_cp"] == 0 and out["missed_cp"] == 0


def test_one_false_positive_per_profile() -> None:
    out = _nab((10, 100))  # raw: 1 + A_fp
    assert out["nab_standard"] == pytest.approx(100 * (0.89 + 1) / 2)  # 94.5
    assert out["nab_lowfp"] == pytest.approx(100 * (0.78 + 1) / 2)  # 89.0
    assert out["nab_lowfn"] == pytest.approx(100 * (0.89 + 2) / 3)  # 96.33
    assert out["fp_cp"] == 1


def test_just_after_the_window_is_a_miss_and_an_fp() -> None:
    out = _nab((161,))
    assert out["nab_standard"] == pytest.approx(100 * (-0.11 - 1 + 1) / 2)  # -5.5
    assert (out["missed_cp"], out["fp_cp"]) == (1, 1)


def test_only_the_first_prediction_in_a_window_counts() -> None:
    assert _nab((100, 101, 150))["nab_standard"] == pytest.approx(100.0)


def test_overlapping_windows_cut_the_later_one() -> None:
    starts, ends = detection_windows(T, _cp(100, 130))
    assert starts.tolist() == [100.0, 160.0] and ends.tolist() == [160.0, 190.0]
    # 100: window 1 at its start (+1); 165: window 2 at 5/30 -> k = 166,
    # x = -pi/2 + pi*166/999 = -1.0488, tanh = -0.7813, reward = -0.11 + 0.555*1.8519 = 0.918
    counts = nab_counts(T, _cp(100, 130), _cp(100, 165))
    assert counts.windows == 2 and counts.missed == 0 and counts.false_positives == 0
    assert counts.raw["standard"] == pytest.approx(1 + 0.918, abs=2e-3)
    # a prediction only in window 1's tail: window 2 is missed
    out = nab_scores(nab_counts(T, _cp(100, 130), _cp(150)))
    assert out["missed_cp"] == 1 and out["fp_cp"] == 0


def test_scores_sum_over_files_before_normalising() -> None:
    a = nab_counts(T, _cp(100), _cp(100))  # +1
    b = nab_counts(T, _cp(100), np.zeros(len(T)))  # -1
    assert nab_scores([a, b])["nab_standard"] == pytest.approx(50.0)
    assert nab_scores(NabCounts())["nab_standard"] == 0.0


def test_uneven_timestamps_use_time_not_rows() -> None:
    t = np.array([0.0, 30.0, 70.0, 80.0])  # window [0, 60] holds rows 0 and 1 only
    counts = nab_counts(t, np.array([1, 0, 0, 0]), np.array([0, 0, 1, 0]))
    assert (counts.missed, counts.false_positives) == (1, 1)


# -- datasets ---------------------------------------------------------------------------
def _skab_csv(path: Path, n: int, anomaly_from: int | None, labels: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    times = pd.date_range("2020-03-09 10:00:00", periods=n, freq="s")
    frame = pd.DataFrame({"datetime": times.strftime("%Y-%m-%d %H:%M:%S"), "A": np.arange(n)})
    frame["B"] = 1.5
    if labels:
        anomaly = np.zeros(n)
        cp = np.zeros(n)
        if anomaly_from is not None:
            anomaly[anomaly_from:] = 1.0
            cp[anomaly_from] = 1.0
        frame["anomaly"], frame["changepoint"] = anomaly, cp
    frame.to_csv(path, sep=";", index=False, lineterminator="\r\n")


def test_skab_layout_loads_labelled_files_in_natural_order(tmp_path: Path) -> None:
    _skab_csv(tmp_path / "valve" / "10.csv", 6, 4)
    _skab_csv(tmp_path / "valve" / "2.csv", 5, 3)
    _skab_csv(tmp_path / "anomaly-free" / "anomaly-free.csv", 5, None, labels=False)
    ds = load_dataset(tmp_path)
    assert ds.layout == "skab" and not ds.is_skab  # not SKAB's sensors
    assert [f.name for f in ds.files] == ["valve/2", "valve/10"]
    f = ds.files[0]
    assert list(f.frame.columns) == ["A", "B"]
    assert isinstance(f.frame.index, pd.DatetimeIndex)
    assert f.anomaly.tolist() == [0, 0, 0, 1, 1] and f.changepoint.tolist() == [0, 0, 0, 1, 0]


def test_nab_layout_windows_become_labels(tmp_path: Path) -> None:
    times = pd.date_range("2021-01-01", periods=6, freq="min").strftime("%Y-%m-%d %H:%M:%S")
    for rel in ("a.csv", "sub/b.csv", "unlabelled.csv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": times, "value": np.arange(6.0)}).to_csv(
            tmp_path / rel, index=False
        )
    labels = {
        "a.csv": [["2021-01-01 00:01:30", "2021-01-01 00:03:00"]],
        "sub/b.csv": [],
    }
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    assert detect_layout(tmp_path) == "nab"
    ds = load_dataset(tmp_path)
    assert [f.name for f in ds.files] == ["a", "sub/b"]
    a, b = ds.files
    assert a.anomaly.tolist() == [0, 0, 1, 1, 0, 0]
    assert a.changepoint.tolist() == [0, 0, 1, 0, 0, 0]  # first row inside the window
    assert b.anomaly.sum() == 0 and list(a.frame.columns) == ["value"]


def test_missing_or_empty_dataset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a folder"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="no CSV files"):
        load_dataset(tmp_path)
    _skab_csv(tmp_path / "free.csv", 5, None, labels=False)
    with pytest.raises(ValueError, match="no labelled files"):
        load_dataset(tmp_path)


# -- protocol ---------------------------------------------------------------------------
def test_training_threshold_rules() -> None:
    scores = np.arange(1001.0)
    assert training_threshold(scores, ProtocolConfig(threshold_quantile=0.99)) == 990.0
    cfg = ProtocolConfig(threshold_rule="max", threshold_factor=2.0)
    assert training_threshold(scores, cfg) == 2000.0
    cfg = ProtocolConfig(threshold_rule="mean_std", threshold_factor=1.0)
    assert training_threshold(np.array([1.0, 3.0]), cfg) == 3.0
    cfg = ProtocolConfig(threshold_rule="quantile_multiple", threshold_factor=2.5)
    assert training_threshold(scores, cfg) == 2475.0  # 2.5 x the 99 % quantile, 990


def test_smoothing_by_hand() -> None:
    flags = np.array([1, 1, 0, 1, 1, 1, 0, 0])
    median = ProtocolConfig(smoothing="rolling_median", smoothing_window=3)
    # trailing sums 1,2,2,2,2,3,2,1 -> >1.5, first two rows 0
    assert smooth_flags(flags, median).tolist() == [0, 0, 1, 1, 1, 1, 1, 0]
    k_of_n = ProtocolConfig(smoothing="k_of_n", smoothing_window=3, smoothing_k=3)
    assert smooth_flags(flags, k_of_n).tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    assert smooth_flags(flags, ProtocolConfig()).tolist() == flags.tolist()


def test_hold_keeps_alarms_firing_by_hand() -> None:
    flags = np.array([0, 1, 0, 0, 0, 0, 1, 1, 0, 0])
    held = ProtocolConfig(smoothing_hold=2)  # on while a flag fired in this row or 2 before
    assert smooth_flags(flags, held).tolist() == [0, 1, 1, 1, 0, 0, 1, 1, 1, 1]
    # smoothing first (2 of the last 2 -> only row 7), then the hold
    both = ProtocolConfig(smoothing="k_of_n", smoothing_window=2, smoothing_k=2, smoothing_hold=1)
    assert smooth_flags(flags, both).tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 1, 0]


def test_changepoints_from_their_own_smoothing_by_hand() -> None:
    flags = np.array([1, 0, 1, 1, 1, 0, 0, 0])
    alarms = np.ones(8, dtype=np.int8)
    # default: the point alarms as they are
    assert changepoint_alarms(flags, alarms, ProtocolConfig()).tolist() == [1] * 8
    # 2 of the last 3 raw flags: trailing sums 1,1,2,2,3,2,1,0
    own = ProtocolConfig(cp_k=2, cp_window=3, cp_edges="both")
    series = changepoint_alarms(flags, alarms, own)
    assert series.tolist() == [0, 0, 1, 1, 1, 1, 0, 0]
    assert alarm_changepoints(series, own).tolist() == [0, 0, 1, 0, 0, 0, 1, 0]


def test_changepoints_from_alarms_by_hand() -> None:
    alarms = np.array([1, 1, 0, 1, 1, 0, 0, 0])
    assert alarm_changepoints(alarms, ProtocolConfig()).tolist() == [1, 0, 0, 1, 0, 0, 0, 0]
    both = ProtocolConfig(cp_edges="both")
    assert alarm_changepoints(alarms, both).tolist() == [0, 0, 1, 1, 0, 1, 0, 0]
    rolled = ProtocolConfig(cp_edges="both", cp_rolling_max=2)  # -> 1,1,1,1,1,1,0,0
    assert alarm_changepoints(alarms, rolled).tolist() == [0, 0, 0, 0, 0, 0, 1, 0]
    # pandas warm-up: rolling(w) is NaN before row w-1, so rows < w never hold an edge
    early = ProtocolConfig(cp_rolling_max=3)
    assert alarm_changepoints(np.array([0, 1, 0, 0, 0, 0]), early).tolist() == [0] * 6
    late = ProtocolConfig(cp_rolling_max=2, cp_edges="both")
    assert alarm_changepoints(np.array([1, 0, 0, 0]), late).tolist() == [0, 0, 1, 0]


def test_protocol_on_a_synthetic_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 600
    X = rng.normal(size=(n, 3))
    X[500:550] += 8.0
    anomaly = np.zeros(n, dtype=np.int8)
    anomaly[500:550] = 1
    frame = pd.DataFrame(
        X, columns=["a", "b", "c"], index=pd.date_range("2020-01-01", periods=n, freq="s")
    )
    frame["anomaly"], frame["changepoint"] = anomaly, 0.0
    frame.loc[frame.index[500], "changepoint"] = 1.0
    frame.loc[frame.index[550], "changepoint"] = 1.0
    frame.index.name = "datetime"
    frame.reset_index().to_csv(tmp_path / "one.csv", sep=";", index=False)
    files = load_dataset(tmp_path).files
    result = run_protocol(files, "pca", None, ProtocolConfig(threshold_quantile=0.995))
    (only,) = result.files
    assert len(only.scores) == n - 400 and only.flags.shape == (n - 400,)
    m = result.metrics()
    assert m["f1"] > 0.9 and m["far"] < 5.0
    assert m["true_cp"] == 2 and m["nab_standard"] > 40
    again = run_protocol(files, "pca", None, ProtocolConfig(threshold_quantile=0.995))
    assert np.array_equal(again.files[0].scores, only.scores)  # fresh fit, same answer


def test_protocol_rejects_short_files(tmp_path: Path) -> None:
    _skab_csv(tmp_path / "short.csv", 50, 40)
    with pytest.raises(ValueError, match="short: 50 rows"):
        run_protocol(load_dataset(tmp_path).files, "pca")
