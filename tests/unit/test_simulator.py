"""The simulator of machines: synthetic machines, CSV replay and the paced runner."""

from __future__ import annotations

import math
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from mmlw.messaging.sink import ListSink
from mmlw.schemas.readings import ReadingsBatch
from mmlw.workers.simulator import (
    FAULT_KINDS,
    CsvReplay,
    Frame,
    SimulationStats,
    Source,
    SyntheticMachine,
    run_simulation,
    synthetic_fleet,
)

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def machine(**kwargs: object) -> SyntheticMachine:
    return SyntheticMachine("pump-1", start=START, **kwargs)  # type: ignore[arg-type]


# --- SyntheticMachine ------------------------------------------------------------------


def test_same_seed_same_readings_however_read() -> None:
    whole = machine(seed=3).read(2500)
    parts = machine(seed=3)
    pieces = [parts.read(n) for n in (1, 999, 37, 1463)]
    np.testing.assert_array_equal(whole.values, np.concatenate([p.values for p in pieces]))
    np.testing.assert_array_equal(whole.labels, np.concatenate([p.labels for p in pieces]))
    assert whole.timestamps == [t for p in pieces for t in p.timestamps]


def test_different_seeds_differ() -> None:
    assert not np.allclose(machine(seed=1).read(100).values, machine(seed=2).read(100).values)


def test_shapes_columns_and_utc_timestamps() -> None:
    m = machine(n_sensors=10, period_s=0.5)
    assert isinstance(m, Source)
    frame = m.read(120)
    assert frame.values.shape == (120, 10) and frame.values.dtype == np.float64
    assert frame.columns[:8] == [
        "Current",
        "Pressure",
        "Temperature",
        "Vibration1",
        "Vibration2",
        "Flow",
        "Voltage",
        "Speed",
    ]
    assert frame.columns[8:] == ["Sensor9", "Sensor10"]
    assert frame.timestamps[0] == START
    assert all(t.utcoffset() == timedelta(0) for t in frame.timestamps)
    steps = {b - a for a, b in zip(frame.timestamps, frame.timestamps[1:], strict=False)}
    assert steps == {timedelta(seconds=0.5)}
    assert m.read(5).timestamps[0] == START + timedelta(seconds=60)
    assert len(machine(n_sensors=3).read(4).columns) == 3


def test_sensors_are_correlated_and_finite() -> None:
    values = machine(seed=5, faults=()).read(2000).values
    assert np.isfinite(values).all()
    corr = np.abs(np.corrcoef(values, rowvar=False))
    assert np.sort(corr[np.triu_indices_from(corr, k=1)])[-5:].min() > 0.8


def test_no_faults_in_warmup_then_every_kind_occurs() -> None:
    m = machine(seed=11, warmup=600, fault_every=400, fault_length=60)
    frame = m.read(600 + 400 * 8)
    labels = frame.labels
    assert labels is not None and not labels[:600].any() and labels[600:].any()
    log = m.fault_log
    assert {e.kind for e in log} == set(FAULT_KINDS)
    assert [e.kind for e in log[:5]] == list(FAULT_KINDS)
    expected = np.zeros(len(frame), dtype=np.int8)
    for episode in log:
        assert 1 <= len(episode.sensors) <= 2 and set(episode.sensors) <= set(frame.columns)
        assert episode.start_index >= 600
        expected[episode.start_index : episode.end_index] = 1
        if episode.kind == "spike":
            assert episode.end_index - episode.start_index <= 3
        else:
            assert 45 <= episode.end_index - episode.start_index <= 75
    np.testing.assert_array_equal(labels, expected)


def test_fault_log_only_lists_episodes_already_read() -> None:
    m = machine(warmup=100, fault_every=100)
    m.read(100)
    assert m.fault_log == []
    m.read(1000)
    assert all(e.start_index < 1100 for e in m.fault_log) and m.fault_log


def test_stuck_sensor_is_constant_while_others_move() -> None:
    m = machine(seed=2, warmup=50, fault_every=200, faults=("stuck",))
    frame = m.read(600)
    episode = m.fault_log[0]
    rows = slice(episode.start_index, episode.end_index)
    for name in episode.sensors:
        assert np.ptp(frame.values[rows, frame.columns.index(name)]) == 0.0
    others = [j for j, c in enumerate(frame.columns) if c not in episode.sensors]
    assert (np.ptp(frame.values[rows][:, others], axis=0) > 0).all()


def test_faults_are_detectable_by_pca_on_warmup_data() -> None:
    m = machine(seed=4)
    train, live = m.read(600), m.read(4000)
    mean, std = train.values.mean(axis=0), train.values.std(axis=0)
    z_train = (train.values - mean) / std
    _, _, vt = np.linalg.svd(z_train - z_train.mean(axis=0), full_matrices=False)
    basis = vt[:3]

    def spe(values: np.ndarray) -> np.ndarray:
        z = (values - mean) / std - z_train.mean(axis=0)
        return ((z - z @ basis.T @ basis) ** 2).sum(axis=1)

    scores, labels = spe(live.values), live.labels.astype(bool)
    normal = scores[~labels].mean()
    assert scores[labels].mean() > 10 * normal
    for kind in FAULT_KINDS:
        rows = np.zeros(len(live), dtype=bool)
        for e in m.fault_log:
            if e.kind == kind:
                rows[e.start_index - 600 : e.end_index - 600] = True
        assert scores[rows].mean() > 3 * normal, kind


def test_frame_round_trips_through_readings_batch() -> None:
    frame = machine(warmup=0, fault_every=5).read(20)
    batch = frame.to_batch()
    again = ReadingsBatch.model_validate_json(batch.to_wire())
    assert again.machine_id == "pump-1" and again.columns == frame.columns
    assert again.timestamps == frame.timestamps
    np.testing.assert_array_equal(np.array(again.values), frame.values)
    assert again.labels == frame.labels.tolist() and 1 in again.labels


def test_frame_rejects_bad_shapes_and_values() -> None:
    stamps = [START]
    with pytest.raises(ValueError, match="shape"):
        Frame("m", ["a", "b"], stamps, np.zeros((1, 3)), None)
    with pytest.raises(ValueError, match="finite"):
        Frame("m", ["a"], stamps, np.array([[math.nan]]), None)
    with pytest.raises(ValueError, match="labels"):
        Frame("m", ["a"], stamps, np.zeros((1, 1)), np.array([2]))


def test_fleet_has_distinct_machines_sharing_start() -> None:
    fleet = synthetic_fleet(3, seed=9, start=START, warmup=10)
    assert [m.machine_id for m in fleet] == ["machine-1", "machine-2", "machine-3"]
    frames = [m.read(50) for m in fleet]
    assert {f.timestamps[0] for f in frames} == {START}
    assert not np.allclose(frames[0].values, frames[1].values)
    again = synthetic_fleet(3, seed=9, start=START, warmup=10)
    np.testing.assert_array_equal(again[2].read(50).values, frames[2].values)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        machine(faults=("spike", "meltdown"))
    with pytest.raises(ValueError):
        machine(period_s=0)


# --- CsvReplay -------------------------------------------------------------------------

SKAB_HEADER = "datetime;Current;Pressure;Volume Flow RateRMS;anomaly;changepoint"


def write_skab(path: Path, rows: list[str], header: str = SKAB_HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\r\n".join([header, *rows]) + "\r\n")
    return path


SKAB_ROWS = [
    "2020-03-09 10:14:33;1.0;0.5;32.0;0.0;0.0",
    "2020-03-09 10:14:34;1.1;0.6;32.5;0.0;0.0",
    "2020-03-09 10:14:35;;0.7;33.0;1.0;1.0",
    "2020-03-09 10:14:37;1.3;0.8;33.5;1.0;0.0",
    "2020-03-09 10:14:38;1.4;0.9;34.0;0.0;1.0",
]


def test_replay_reads_skab_layout(tmp_path: Path) -> None:
    replay = CsvReplay(write_skab(tmp_path / "valve1" / "3.csv", SKAB_ROWS))
    assert isinstance(replay, Source)
    assert replay.machine_id == "valve1-3"
    assert replay.columns == ["Current", "Pressure", "Volume Flow RateRMS"]
    assert replay.dropped_rows == 1 and len(replay) == 4
    first, second = replay.read(3), replay.read(3)
    assert replay.read(3) is None
    assert len(first) == 3 and len(second) == 1
    assert first.labels.tolist() == [0, 0, 1] and second.labels.tolist() == [0]
    assert first.timestamps[0] == datetime(2020, 3, 9, 10, 14, 33, tzinfo=UTC)
    np.testing.assert_array_equal(second.values, [[1.4, 0.9, 34.0]])
    assert first.to_batch().columns == replay.columns


def test_replay_shifts_time_to_start_and_loops(tmp_path: Path) -> None:
    path = write_skab(tmp_path / "run.csv", SKAB_ROWS)
    replay = CsvReplay(path, "pump-7", start=START, loop=True)
    stamps = [t for _ in range(3) for t in replay.read(10).timestamps]
    offsets = [(t - START).total_seconds() for t in stamps]
    assert offsets == [0, 1, 4, 5, 6, 7, 10, 11, 12, 13, 16, 17]
    assert replay.machine_id == "pump-7"


def test_replay_sniffs_comma_and_handles_missing_labels(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    path.write_text("datetime,a,b\n2021-01-01 00:00:00,1,2\n2021-01-01 00:00:01,3,4\n")
    replay = CsvReplay(path)
    frame = replay.read(10)
    assert replay.columns == ["a", "b"] and frame.labels is None
    np.testing.assert_array_equal(frame.values, [[1, 2], [3, 4]])
    only_b = CsvReplay(path, columns=["b"], time_column="datetime").read(10)
    assert only_b.columns == ["b"]


def test_replay_errors_name_the_problem(tmp_path: Path) -> None:
    no_time = tmp_path / "no_time.csv"
    no_time.write_text("time;a\n2021-01-01 00:00:00;1\n")
    with pytest.raises(ValueError, match="no time column 'datetime'"):
        CsvReplay(no_time)
    no_sensor = tmp_path / "no_sensor.csv"
    no_sensor.write_text("datetime;name;anomaly\n2021-01-01 00:00:00;x;0\n")
    with pytest.raises(ValueError, match="no numeric sensor columns"):
        CsvReplay(no_sensor)
    good = write_skab(tmp_path / "good.csv", SKAB_ROWS)
    with pytest.raises(ValueError, match="Missing"):
        CsvReplay(good, columns=["Current", "Missing"])
    with pytest.raises(ValueError, match="machine_id"):
        CsvReplay(good, "no spaces allowed")


def test_replay_of_real_skab_file(skab_dir: Path) -> None:
    replay = CsvReplay(skab_dir / "valve1" / "0.csv", start=START)
    assert replay.machine_id == "valve1-0" and len(replay.columns) == 8
    assert "anomaly" not in replay.columns and "changepoint" not in replay.columns
    frames = []
    while (frame := replay.read(500)) is not None:
        frames.append(frame)
    labels = np.concatenate([f.labels for f in frames])
    assert len(labels) == len(replay) == 1147 and labels.sum() == 401
    assert frames[0].timestamps[0] == START
    assert all(len(f.to_batch()) == len(f) for f in frames)


# --- run_simulation --------------------------------------------------------------------


def fleet(n: int = 3) -> list[SyntheticMachine]:
    return synthetic_fleet(n, start=START, warmup=20, fault_every=30)


def test_runner_round_robin_batches_and_exact_max_readings() -> None:
    sink = ListSink()
    stats = run_simulation(fleet(), sink, batch_size=10, speedup=math.inf, max_readings=95)
    assert stats.readings == 95 == sum(len(b) for b in sink.batches)
    assert [len(b) for b in sink.batches] == [10] * 9 + [5]
    assert [b.machine_id for b in sink.batches[:6]] == ["machine-1", "machine-2", "machine-3"] * 2
    assert stats.per_machine == {"machine-1": 35, "machine-2": 30, "machine-3": 30}
    assert stats.batches == 10
    first = sink.batches[0].timestamps
    assert sink.batches[3].timestamps[0] - first[-1] == timedelta(seconds=1)


def test_runner_stops_when_sources_are_used_up(tmp_path: Path) -> None:
    replay = CsvReplay(write_skab(tmp_path / "a.csv", SKAB_ROWS))
    sink = ListSink()
    stats = run_simulation([replay], sink, batch_size=3, speedup=0)
    assert [len(b) for b in sink.batches] == [3, 1] and stats.readings == 4
    assert sink.batches[0].labels == [0, 0, 1]


def test_runner_paces_by_speedup_within_duration() -> None:
    sink = ListSink()
    reports: list[SimulationStats] = []
    stats = run_simulation(
        fleet(2),
        sink,
        batch_size=1,
        speedup=20.0,
        duration_s=0.2,
        on_progress=reports.append,
        progress_every_s=0.05,
    )
    # reading k is due k / 20 s after the start, so within 0.2 s at most readings 0..4
    assert 1 <= stats.per_machine["machine-1"] <= 5
    assert 1 <= stats.per_machine["machine-2"] <= 5
    assert stats.elapsed_s >= 0.2
    assert reports and reports[-1] == stats


def test_runner_stop_event_ends_run() -> None:
    stop = threading.Event()

    def progress(stats: SimulationStats) -> None:
        if stats.readings >= 30:
            stop.set()

    sink = ListSink()
    stats = run_simulation(
        fleet(), sink, batch_size=5, speedup=0, stop=stop, on_progress=progress, progress_every_s=0
    )
    assert stats.readings == 30 and len(sink.batches) == 6


def test_runner_stop_interrupts_a_long_wait() -> None:
    stop = threading.Event()
    timer = threading.Timer(0.05, stop.set)
    timer.start()
    began = time.monotonic()
    stats = run_simulation(fleet(1), ListSink(), batch_size=1, speedup=0.001, stop=stop)
    timer.cancel()
    assert stats.readings == 1 and time.monotonic() - began < 5.0
