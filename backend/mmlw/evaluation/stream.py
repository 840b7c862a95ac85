"""``mmlw evaluate --mode stream``: replay labelled files through the serving path.

Each file of a SKAB- or NAB-layout folder is replayed in time order exactly as a machine
is served, with nothing from the future:

1. **learning period**: the first rows of the file (NAB layout: NAB's probation,
   :func:`~mmlw.evaluation.nab.probation_length`, 15 % capped at 750 rows; SKAB layout:
   the protocol's 400 training rows) fit a model as ``mmlw train`` does
   (:func:`~mmlw.detectors.model.fit_model`, the product's threshold quantile);
2. **serving**: the remaining rows go through :meth:`AnomalyModel.stream
   <mmlw.detectors.model.AnomalyModel.stream>` in batches of ``batch_size``, starting
   from the model's initial carry; after each batch every alert rule of kind ``scores`` is
   evaluated on the newest readings (:func:`~mmlw.alerts.conditions.scores_evidence`
   on a :class:`~mmlw.store.scores.RecentScores`) and stepped through the alert engine
   (:func:`~mmlw.alerts.engine.step`) with ``now`` = the batch's last timestamp;
3. **a detection is an alert onset**: the batch's last row when some rule's transition
   carries :attr:`Event.FIRING <mmlw.alerts.engine.Event.FIRING>` (the first
   notification of an alert instance). Several rules firing at once are one detection.

Output: ``OUT/detections/<relative path of the data file>`` with ``timestamp,anomaly_score``:
one row per data row, in the data file's order, its timestamps copied as text,
``anomaly_score`` 1 at a detection else 0 (0 in the learning period, and on rows the
loader drops for missing values). A file on which the model cannot be fitted or scored is
reported with its error and written as all zeros; the other files still run. NAB-layout
folders are scored by NAB's rules (:mod:`mmlw.evaluation.nab`) on the written folder;
SKAB-layout folders by SKAB's point metrics (rows under a firing alert vs anomaly labels)
and its NAB changepoint score (:mod:`mmlw.evaluation.metrics`), both on the rows after
learning. SKAB's changepoints mark where an anomaly starts and where the machine is back
to normal, and its reference notebooks predict them from both edges of the alarm series;
here they are the alert onsets and the machine's all-clears (the batch after which no
alert fires any more, when the resolved notices go out).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmlw.alerts.config import AlertRule
from mmlw.evaluation.alert_replay import score_rules
from mmlw.evaluation.datasets import BenchmarkFile, Dataset, Layout, group_of, load_dataset
from mmlw.evaluation.nab import probation_length
from mmlw.evaluation.protocol import ProtocolConfig
from mmlw.evaluation.replay import DEFAULT_BATCH_SIZE, MIN_LEARNING_ROWS, ReplayResult, replay_file
from mmlw.evaluation.stream_files import data_positions, data_timestamps, write_detections
from mmlw.evaluation.stream_report import (
    DetectorSummary,
    FileOutcome,
    SkabTotals,
    nab_detection_scores,
    summary_table,
    write_summary,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "MIN_LEARNING_ROWS",
    "SKAB_LEARNING_ROWS",
    "DetectorSummary",
    "FileOutcome",
    "ReplayResult",
    "learning_rows",
    "replay_file",
    "score_rules",
    "stream_evaluate",
    "summary_table",
]

#: SKAB's training part, as the batch protocol defines it
SKAB_LEARNING_ROWS = ProtocolConfig().train_size


def learning_rows(layout: Layout, n_rows: int) -> int:
    """Data rows of a file of ``n_rows`` rows that form its learning period.

    >>> learning_rows("nab", 4032), learning_rows("nab", 15902), learning_rows("skab", 1147)
    (604, 750, 400)
    """
    return probation_length(n_rows) if layout == "nab" else SKAB_LEARNING_ROWS


def _replay_one(
    dataset: Dataset,
    file: BenchmarkFile,
    detector: str,
    params: Mapping[str, Any],
    *,
    quantile: float | None,
    rules: Sequence[AlertRule],
    batch_size: int,
    out_dir: Path,
) -> tuple[FileOutcome, ReplayResult | None]:
    """Replay and write one file; any failure becomes the outcome's error (all zeros,
    and no result)."""
    started = time.perf_counter()
    timestamps = data_timestamps(dataset.root, file, dataset.layout)
    n_data = len(timestamps)
    nominal = learning_rows(dataset.layout, n_data)
    outcome = FileOutcome(file=f"{file.name}.csv", rows=n_data, learning_rows=0)
    detections = np.zeros(len(file.frame), dtype=np.int8)
    result: ReplayResult | None = None
    positions = np.zeros(0, dtype=np.int64)
    try:
        positions = data_positions(dataset.root, file, dataset.layout, n_data)
        outcome.learning_rows = int(np.sum(positions < nominal))
        if dataset.layout == "skab" and n_data <= nominal:
            raise ValueError(f"learning period too short: {n_data} rows, need more than {nominal}")
        result = replay_file(
            file.frame,
            outcome.learning_rows,
            detector,
            params=params,
            quantile=quantile,
            rules=rules,
            batch_size=batch_size,
        )
        detections = result.detections
        outcome.alerts = result.alerts
        outcome.flagged = int(result.flags.sum())
    except Exception as exc:  # reported per file, the run goes on
        outcome.error = f"{type(exc).__name__}: {exc}"
        detections = np.zeros(len(file.frame), dtype=np.int8)
        result = None
    outcome.detections = int(detections.sum())
    write_detections(out_dir / outcome.file, timestamps, positions, detections[: len(positions)])
    outcome.seconds = time.perf_counter() - started
    return outcome, result


def _evaluate_detector(
    dataset: Dataset,
    detector: str,
    params: Mapping[str, Any],
    out_dir: Path,
    *,
    quantile: float | None,
    rules: Sequence[AlertRule],
    batch_size: int,
    on_file: Callable[[str, FileOutcome], None] | None,
) -> DetectorSummary:
    started = time.perf_counter()
    summary = DetectorSummary(detector, dict(params), str(out_dir))
    for file in dataset.files:
        outcome, result = _replay_one(
            dataset,
            file,
            detector,
            params,
            quantile=quantile,
            rules=rules,
            batch_size=batch_size,
            out_dir=out_dir,
        )
        summary.files.append(outcome)
        first = outcome.learning_rows or min(SKAB_LEARNING_ROWS, len(file.frame))
        if dataset.layout == "skab" and first < len(file.frame):
            summary.groups.setdefault(group_of(file.name), SkabTotals()).add(file, first, result)
        if on_file is not None:
            on_file(detector, outcome)
    if dataset.layout == "nab":
        summary.scores = nab_detection_scores(dataset.root, out_dir)
    else:
        summary.scores = sum(summary.groups.values(), SkabTotals()).scores()  # pooled
    summary.seconds = time.perf_counter() - started
    return summary


def stream_evaluate(
    dataset: Path | str | Dataset,
    out: Path,
    detectors: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    quantile: float | None = None,
    rules: Sequence[AlertRule] | None = None,
    on_file: Callable[[str, FileOutcome], None] | None = None,
) -> list[DetectorSummary]:
    """Replay every file under each ``(detector, params)`` and write ``out``.

    Layout: one detector writes ``out/detections/<file>``; several write
    ``out/<detector>/detections/<file>``. ``out/summary.json`` holds every detector's
    per-file outcomes and scores. ``on_file(detector, outcome)`` runs after each file.
    Per-file failures never stop the run; a bad folder or ``batch_size`` raises first.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
    if not detectors:
        raise ValueError("detectors: name at least one")
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    rules = score_rules() if rules is None else list(rules)
    out = Path(out)
    nested = len(detectors) > 1
    summaries = []
    for name, params in detectors:
        target = (out / name if nested else out) / "detections"
        summaries.append(
            _evaluate_detector(
                data,
                name,
                params,
                target,
                quantile=quantile,
                rules=rules,
                batch_size=batch_size,
                on_file=on_file,
            )
        )
    write_summary(out / "summary.json", data, summaries, batch_size, quantile, rules)
    return summaries
