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
and its NAB changepoint score on the onsets (:mod:`mmlw.evaluation.metrics`), both on
the rows after learning.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmlw.alerts.conditions import episode_evidence, scores_evidence
from mmlw.alerts.config import AlertRule, AlertsConfig, FlagsCondition, load_alerts_config
from mmlw.alerts.engine import AlertSnapshot, AlertState, Event, step
from mmlw.evaluation.datasets import BenchmarkFile, Dataset, Layout, load_dataset
from mmlw.evaluation.metrics import (
    NabCounts,
    PointCounts,
    nab_counts,
    nab_scores,
    point_counts,
    point_metrics,
)
from mmlw.evaluation.nab import probation_length, score_detection_folder
from mmlw.evaluation.protocol import ProtocolConfig
from mmlw.store.scores import RecentScores

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

DEFAULT_BATCH_SIZE = 10
#: SKAB's training part, as the batch protocol defines it
SKAB_LEARNING_ROWS = ProtocolConfig().train_size
#: fewer learned rows than this is "learning period too short" (the file is reported)
MIN_LEARNING_ROWS = 30


def learning_rows(layout: Layout, n_rows: int) -> int:
    """Data rows of a file of ``n_rows`` rows that form its learning period.

    >>> learning_rows("nab", 4032), learning_rows("nab", 15902), learning_rows("skab", 1147)
    (604, 750, 400)
    """
    return probation_length(n_rows) if layout == "nab" else SKAB_LEARNING_ROWS


def score_rules(config: AlertsConfig | None = None) -> list[AlertRule]:
    """The rules of kind ``scores`` of ``config`` (default: the product's built-in rules)."""
    config = config if config is not None else load_alerts_config()
    return [r for r in config.rules if isinstance(r.condition, FlagsCondition)]


@dataclass(frozen=True)
class ReplayResult:
    """One replayed series, aligned with its rows (learning rows: score NaN, no flag).

    ``detections`` is 0/1 (int8), 1 only at alert onsets; ``alerting`` marks the rows of
    every batch after which an alert was firing (what an operator sees as "alerting");
    ``alerts`` counts the alert instances that fired (one per rule onset, so it may exceed
    the detections)."""

    scores: np.ndarray
    flags: np.ndarray
    detections: np.ndarray
    alerting: np.ndarray
    alerts: int
    learning_rows: int
    threshold: float


def _recent(
    columns: list[str],
    stamps_us: np.ndarray,
    scores: np.ndarray,
    contributions: np.ndarray,
    threshold: float,
) -> RecentScores:
    """What the store's ``recent`` returns: the newest scored readings, oldest first."""
    return RecentScores(
        columns=columns,
        timestamps_us=stamps_us,
        scores=scores,
        thresholds=np.full(len(scores), threshold),
        versions=np.ones(len(scores), dtype=np.int64),
        contributions=contributions,
    )


class _Alerts:
    """The alert instances of one machine under the ``scores`` rules of ``rules`` (other
    kinds are ignored; nothing is silenced or acknowledged)."""

    def __init__(self, rules: Sequence[AlertRule]) -> None:
        self.checks = [
            (r.timing, r.condition) for r in rules if isinstance(r.condition, FlagsCondition)
        ]
        self.open: list[AlertSnapshot | None] = [None] * len(self.checks)
        #: how many newest readings the conditions look at
        self.depth = max((c.n for _, c in self.checks), default=0)

    def evaluate(self, recent: RecentScores, now: datetime, new: int = 1) -> int:
        """Step every rule at ``now`` after ``new`` readings were scored, as the serving
        path does (:func:`mmlw.services.alerting.evaluate_machine`: a rule with no open
        alert that held at one of the new readings but not at the newest is stepped with
        both); the number of alert onsets (FIRING events)."""
        fired = 0
        for i, (timing, condition) in enumerate(self.checks):
            latest = scores_evidence(condition, recent)
            current = self.open[i]
            episode = episode_evidence(condition, recent, new, latest)
            no_alert = current is None or not current.is_open
            steps = [episode, latest] if episode is not None and no_alert else [latest]
            for evidence in steps:
                transition = step(timing, self.open[i], evidence, now)
                self.open[i] = transition.after
                fired += transition.event is Event.FIRING
        return fired

    @property
    def firing(self) -> bool:
        """Whether some alert instance is firing now."""
        return any(a is not None and a.state is AlertState.FIRING for a in self.open)


def replay_file(
    frame: pd.DataFrame,
    n_learning: int,
    detector: str,
    *,
    params: Mapping[str, Any] | None = None,
    quantile: float | None = None,
    rules: Sequence[AlertRule] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ReplayResult:
    """Fit on the first ``n_learning`` rows of ``frame`` (time-ordered sensors, DatetimeIndex),
    then serve the rest in batches, alerting after each (see the module docstring).

    Guarantees: no row's score, flag or detection depends on a later row; detections are
    only at the last row of a batch, never in the learning period; the scores do not
    depend on ``batch_size`` (the streaming scorer's invariance). ValueError if the
    learning period is shorter than :data:`MIN_LEARNING_ROWS` or nothing follows it;
    a detector's own exception propagates.
    """
    from mmlw.detectors.model import fit_model
    from mmlw.settings import ModelSettings

    if batch_size < 1:
        raise ValueError(f"batch_size: must be at least 1, got {batch_size}")
    n = len(frame)
    if n_learning < MIN_LEARNING_ROWS:
        raise ValueError(
            f"learning period too short: {n_learning} rows (need at least {MIN_LEARNING_ROWS})"
        )
    if n_learning >= n:
        raise ValueError(
            f"learning period too short: the file has {n} usable rows, all {n_learning} "
            "needed to learn (nothing left to score)"
        )
    quantile = ModelSettings().threshold_quantile if quantile is None else quantile
    alerts = _Alerts(score_rules() if rules is None else rules)
    X = frame.to_numpy(dtype=np.float64)
    columns = [str(c) for c in frame.columns]
    model = fit_model(X[:n_learning], columns, detector, dict(params or {}), quantile).model

    live = X[n_learning:]
    index = pd.DatetimeIndex(frame.index[n_learning:])
    stamps_us = index.as_unit("us").asi8
    scores = np.full(n, np.nan)
    contributions = np.zeros((len(live), len(columns)))
    detections = np.zeros(n, dtype=np.int8)
    alerting = np.zeros(n, dtype=bool)
    fired_total = 0
    carry = None
    for start in range(0, len(live), batch_size):
        stop = min(start + batch_size, len(live))
        scored, carry = model.stream(live[start:stop], carry)
        scores[n_learning + start : n_learning + stop] = scored.scores
        contributions[start:stop] = scored.contributions
        if not alerts.depth:
            continue
        tail = slice(max(0, start - alerts.depth + 1), stop)
        recent = _recent(
            columns,
            stamps_us[tail],
            scores[n_learning:][tail],
            contributions[tail],
            model.threshold,
        )
        fired = alerts.evaluate(recent, index[stop - 1].to_pydatetime(), stop - start)
        fired_total += fired
        if fired:
            detections[n_learning + stop - 1] = 1
        alerting[n_learning + start : n_learning + stop] = alerts.firing
    flags = np.zeros(n, dtype=bool)
    flags[n_learning:] = scores[n_learning:] > model.threshold
    return ReplayResult(
        scores=scores,
        flags=flags,
        detections=detections,
        alerting=alerting,
        alerts=fired_total,
        learning_rows=n_learning,
        threshold=float(model.threshold),
    )


# -- files: rows as the data file has them ---------------------------------------------
_TIME_COLUMN: Mapping[str, str] = {"nab": "timestamp", "skab": "datetime"}
_SEPARATOR: Mapping[str, str] = {"nab": ",", "skab": ";"}


def _data_timestamps(root: Path, file: BenchmarkFile, layout: Layout) -> list[str]:
    """The data file's timestamp column as text, one per data row, in file order."""
    path = root / f"{file.name}.csv"
    col = _TIME_COLUMN[layout]
    text = pd.read_csv(
        path, sep=_SEPARATOR[layout], usecols=[col], dtype=str, keep_default_na=False
    )
    return [str(t) for t in text[col]]


def _data_positions(root: Path, file: BenchmarkFile, layout: Layout, n_data: int) -> np.ndarray:
    """For each of ``file``'s loaded rows, its row position in the data file.

    Mirrors :mod:`mmlw.evaluation.datasets` (rows with a missing value or time are
    dropped, the rest stably sorted by time) and checks the result against the loaded
    frame: ValueError if they differ."""
    raw = pd.read_csv(root / f"{file.name}.csv", sep=_SEPARATOR[layout])
    times = pd.DatetimeIndex(pd.to_datetime(raw.pop(_TIME_COLUMN[layout]), errors="coerce"))
    sensors = raw.drop(columns=[c for c in ("anomaly", "changepoint") if c in raw.columns])
    values = sensors.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    keep = np.flatnonzero(values.notna().all(axis=1).to_numpy() & times.notna())
    stamps = times.as_unit("ns").asi8
    positions = keep[np.argsort(stamps[keep], kind="stable")]
    same = (
        len(raw) == n_data
        and len(positions) == len(file.frame)
        and list(values.columns) == [str(c) for c in file.frame.columns]
        and bool(np.array_equal(stamps[positions], file.frame.index.asi8))
        and bool(np.array_equal(values.to_numpy()[positions], file.frame.to_numpy(np.float64)))
    )
    if not same:
        raise ValueError(f"{file.name}: loaded rows do not match the data file's rows")
    return positions


def _write_detections(
    path: Path, timestamps: list[str], positions: np.ndarray, detections: np.ndarray
) -> None:
    """``timestamp,anomaly_score`` per data row, in the data file's order; row
    ``positions[i]`` of the data file gets ``detections[i]``, every other row 0."""
    score = np.zeros(len(timestamps), dtype=np.int8)
    score[positions] = detections
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"timestamp": timestamps, "anomaly_score": score})
    frame.to_csv(path, index=False, lineterminator="\n")


# -- a detector over a folder ----------------------------------------------------------
@dataclass
class FileOutcome:
    """One file under one detector (``error`` set: counted as no detections)."""

    file: str  # relative path of the data file
    rows: int  # data rows
    learning_rows: int
    detections: int = 0
    alerts: int = 0
    flagged: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class DetectorSummary:
    """A detector's files, its scores and where its detections were written."""

    detector: str
    params: dict[str, Any]
    detections_dir: str
    files: list[FileOutcome] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def errors(self) -> list[FileOutcome]:
        return [f for f in self.files if f.error is not None]


@dataclass
class _SkabTotals:
    counts: PointCounts = field(default_factory=PointCounts)
    nab: NabCounts = field(default_factory=NabCounts)

    def add(
        self, file: BenchmarkFile, first: int, detections: np.ndarray, alerting: np.ndarray
    ) -> None:
        """On the rows after learning (``first`` onwards): rows under a firing alert vs
        anomaly labels (point metrics), alert onsets vs changepoints (NAB score)."""
        onsets = detections[first:]
        self.counts += point_counts(file.anomaly[first:], alerting[first:].astype(np.int8))
        times = pd.DatetimeIndex(file.frame.index[first:])
        seconds = np.asarray((times - times[0]).total_seconds(), dtype=np.float64)
        width = ProtocolConfig().nab_window_s
        self.nab += nab_counts(seconds, file.changepoint[first:], onsets, width)

    def scores(self) -> dict[str, float]:
        out = point_metrics(self.counts)
        out.update(nab_scores(self.nab))
        counts = self.counts
        out.update(tp=counts.tp, fp=counts.fp, fn=counts.fn, tn=counts.tn)
        return out


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
) -> tuple[FileOutcome, np.ndarray, np.ndarray]:
    """Replay and write one file; any failure becomes the outcome's error (all zeros).
    Returns the outcome, the detections and the rows under a firing alert."""
    started = time.perf_counter()
    timestamps = _data_timestamps(dataset.root, file, dataset.layout)
    n_data = len(timestamps)
    nominal = learning_rows(dataset.layout, n_data)
    outcome = FileOutcome(file=f"{file.name}.csv", rows=n_data, learning_rows=0)
    detections = np.zeros(len(file.frame), dtype=np.int8)
    alerting = np.zeros(len(file.frame), dtype=bool)
    positions = np.zeros(0, dtype=np.int64)
    try:
        positions = _data_positions(dataset.root, file, dataset.layout, n_data)
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
        detections, alerting = result.detections, result.alerting
        outcome.alerts = result.alerts
        outcome.flagged = int(result.flags.sum())
    except Exception as exc:  # reported per file, the run goes on
        outcome.error = f"{type(exc).__name__}: {exc}"
        detections = np.zeros(len(file.frame), dtype=np.int8)
        alerting = np.zeros(len(file.frame), dtype=bool)
    outcome.detections = int(detections.sum())
    _write_detections(out_dir / outcome.file, timestamps, positions, detections[: len(positions)])
    outcome.seconds = time.perf_counter() - started
    return outcome, detections, alerting


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
    skab = _SkabTotals()
    for file in dataset.files:
        outcome, detections, alerting = _replay_one(
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
            skab.add(file, first, detections, alerting)
        if on_file is not None:
            on_file(detector, outcome)
    if dataset.layout == "nab":
        summary.scores = _nab_scores(dataset.root, out_dir)
    else:
        summary.scores = skab.scores()
    summary.seconds = time.perf_counter() - started
    return summary


def _nab_scores(root: Path, detections_dir: Path) -> dict[str, Any]:
    """NAB's three normalised profile scores of the written folder (threshold 0.5)."""
    try:
        result = score_detection_folder(root, detections_dir, threshold=0.5)
    except (ValueError, KeyError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    files = result.files.values()
    return {
        **result.normalised(),
        "windows": sum(f.windows for f in files),
        "detected_windows": sum(f.detected_windows for f in files),
        "missed_windows": sum(f.missed_windows for f in files),
        "fp_rows": sum(f.fp_rows for f in files),
    }


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
    _write_summary(out / "summary.json", data, summaries, batch_size, quantile, rules)
    return summaries


def _write_summary(
    path: Path,
    data: Dataset,
    summaries: Sequence[DetectorSummary],
    batch_size: int,
    quantile: float | None,
    rules: Sequence[AlertRule],
) -> None:
    from mmlw.settings import ModelSettings

    record = {
        "mode": "stream",
        "dataset": str(data.root),
        "layout": data.layout,
        "batch_size": batch_size,
        "threshold_quantile": ModelSettings().threshold_quantile if quantile is None else quantile,
        "rules": [r.model_dump(mode="json", by_alias=True, exclude={"notify"}) for r in rules],
        "detectors": {
            s.detector: {
                "params": s.params,
                "detections_dir": s.detections_dir,
                "seconds": round(s.seconds, 3),
                "rows": sum(f.rows for f in s.files),
                "detections": sum(f.detections for f in s.files),
                "alerts": sum(f.alerts for f in s.files),
                "errors": len(s.errors),
                "scores": s.scores,
                "files": [asdict(f) for f in s.files],
            }
            for s in summaries
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


_NAB_COLUMNS = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
_SKAB_COLUMNS = ("f1", "far", "mar", "nab_standard", "nab_lowfp", "nab_lowfn")


def summary_table(summaries: Sequence[DetectorSummary], layout: Layout) -> str:
    """A plain-text table: one line per detector (totals and scores), then each error."""
    metrics = _NAB_COLUMNS if layout == "nab" else _SKAB_COLUMNS
    head = ["detector", "files", "errors", "rows", "detections", "alerts", *metrics, "seconds"]
    lines = [head]
    for s in summaries:
        values = [s.scores.get(m) for m in metrics]
        lines.append(
            [
                s.detector,
                str(len(s.files)),
                str(len(s.errors)),
                str(sum(f.rows for f in s.files)),
                str(sum(f.detections for f in s.files)),
                str(sum(f.alerts for f in s.files)),
                *("-" if v is None else f"{v:.3f}" for v in values),
                f"{s.seconds:.1f}",
            ]
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    text = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in lines
    ]
    for s in summaries:
        if "error" in s.scores:
            text.append(f"{s.detector}: scoring failed: {s.scores['error']}")
        text.extend(f"{s.detector}: {f.file}: {f.error}" for f in s.errors)
    return "\n".join(text) + "\n"
