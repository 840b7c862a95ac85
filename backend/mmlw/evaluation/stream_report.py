"""What ``mmlw evaluate --mode stream`` reports: each file's outcome, each detector's
scores (NAB's on the written folder, or SKAB's point metrics and NAB changepoint score),
``summary.json`` and a plain-text table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmlw.alerts.config import AlertRule
from mmlw.evaluation.datasets import BenchmarkFile, Dataset, Layout
from mmlw.evaluation.metrics import (
    NabCounts,
    PointCounts,
    nab_counts,
    nab_scores,
    point_counts,
    point_metrics,
)
from mmlw.evaluation.nab import score_detection_folder
from mmlw.evaluation.protocol import ProtocolConfig
from mmlw.evaluation.replay import ReplayResult

__all__ = [
    "DetectorSummary",
    "FileOutcome",
    "SkabTotals",
    "nab_detection_scores",
    "summary_table",
    "write_summary",
]


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
    #: SKAB layout: the totals of each group of files (the first folder of their path)
    groups: dict[str, SkabTotals] = field(default_factory=dict)

    @property
    def errors(self) -> list[FileOutcome]:
        return [f for f in self.files if f.error is not None]


@dataclass
class SkabTotals:
    counts: PointCounts = field(default_factory=PointCounts)
    nab: NabCounts = field(default_factory=NabCounts)

    def add(self, file: BenchmarkFile, first: int, result: ReplayResult | None) -> None:
        """On the rows after learning (``first`` onwards): rows under a firing alert vs
        anomaly labels (point metrics), alert onsets and all-clears (both edges of the
        alerting series, as SKAB's reference notebooks take them) vs changepoints (NAB
        score). No result (the file failed): nothing flagged, nothing detected."""
        alerting = edges = np.zeros(len(file.frame), dtype=np.int8)
        if result is not None:
            alerting = result.alerting.astype(np.int8)
            edges = np.maximum(result.detections, result.clears)
        self.counts += point_counts(file.anomaly[first:], alerting[first:])
        times = pd.DatetimeIndex(file.frame.index[first:])
        seconds = np.asarray((times - times[0]).total_seconds(), dtype=np.float64)
        width = ProtocolConfig().nab_window_s
        self.nab += nab_counts(seconds, file.changepoint[first:], edges[first:], width)

    def __add__(self, other: SkabTotals) -> SkabTotals:
        return SkabTotals(self.counts + other.counts, self.nab + other.nab)

    def scores(self) -> dict[str, float]:
        out = point_metrics(self.counts)
        out.update(nab_scores(self.nab))
        counts = self.counts
        out.update(tp=counts.tp, fp=counts.fp, fn=counts.fn, tn=counts.tn)
        return out


def nab_detection_scores(root: Path, detections_dir: Path) -> dict[str, Any]:
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


def write_summary(
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
