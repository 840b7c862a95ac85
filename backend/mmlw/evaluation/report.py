"""Writing evaluation outputs: per-file predictions, a metrics table and a plotly report.

Layout under ``out``:

* ``predictions/<detector label>/<file name>.csv`` — columns ``datetime, anomaly,
  changepoint, score`` for every test row (``anomaly``/``changepoint`` are the 0/1
  predictions; one folder per evaluated detector);
* ``metrics.csv`` and ``metrics.md`` — one row per detector (plus, for SKAB, the
  published leaderboard rows, marked ``source = published``);
* ``report.html`` — per file one figure: each detector's score and threshold in its own
  row, true anomalous rows shaded; plotly.js is embedded once (works offline).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mmlw.evaluation.leaderboard import COLUMNS, PUBLISHED
from mmlw.evaluation.metrics import runs
from mmlw.evaluation.protocol import DetectorResult, FileResult

__all__ = [
    "metrics_markdown",
    "metrics_table",
    "write_all",
    "write_metrics",
    "write_predictions",
    "write_report",
]


def write_predictions(result: DetectorResult, out: Path) -> list[Path]:
    """One CSV per file under ``out/predictions/<label>/``; returns the paths written."""
    paths = []
    for f in result.files:
        path = out / "predictions" / result.label / f"{f.name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "datetime": f.times.strftime("%Y-%m-%d %H:%M:%S"),
                "anomaly": f.flags.astype(int),
                "changepoint": f.pred_cp.astype(int),
                "score": f.scores,
            }
        ).to_csv(path, index=False)
        paths.append(path)
    return paths


def metrics_table(results: Sequence[DetectorResult], published: bool) -> pd.DataFrame:
    """Our rows (``source = ours``) then, if ``published``, the leaderboard rows."""
    rows = []
    for r in results:
        m = r.metrics()
        rows.append({"detector": r.label, "source": "ours", **{c: m[c] for c in COLUMNS}})
    if published:
        for name, values in PUBLISHED.items():
            rows.append({"detector": name, "source": "published", **values})
    return pd.DataFrame(rows, columns=["detector", "source", *COLUMNS])


def metrics_markdown(table: pd.DataFrame) -> str:
    """The metrics table as GitHub markdown (missing values as "-")."""

    def cell(v: object) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "-"
        if isinstance(v, float):
            return f"{v:.0f}" if v.is_integer() else f"{v:.2f}"
        return str(v)

    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def write_metrics(table: pd.DataFrame, out: Path) -> tuple[Path, Path]:
    """``metrics.csv`` and ``metrics.md``; returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "metrics.csv", out / "metrics.md"
    table.to_csv(csv_path, index=False)
    md_path.write_text(metrics_markdown(table), encoding="utf-8")
    return csv_path, md_path


def _shade(times: pd.DatetimeIndex, labels: np.ndarray) -> list[tuple[object, object]]:
    return [(times[start], times[stop - 1]) for start, stop in runs(labels)]


def _figure(name: str, per_detector: Sequence[tuple[str, FileResult]]) -> object:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=len(per_detector),
        cols=1,
        shared_xaxes=True,
        subplot_titles=[label for label, _ in per_detector],
        vertical_spacing=0.08,
    )
    for row, (label, f) in enumerate(per_detector, start=1):
        fig.add_trace(
            go.Scatter(x=f.times, y=f.scores, name=f"{label} score", mode="lines"), row, 1
        )
        fig.add_trace(
            go.Scatter(
                x=[f.times[0], f.times[-1]],
                y=[f.threshold, f.threshold],
                name=f"{label} threshold",
                mode="lines",
                line={"dash": "dash", "color": "black"},
            ),
            row,
            1,
        )
        for start, end in _shade(f.times, f.anomaly):
            fig.add_vrect(
                x0=start, x1=end, fillcolor="red", opacity=0.15, line_width=0, row=row, col=1
            )
    fig.update_layout(title=name, height=220 * len(per_detector) + 80, showlegend=False)
    return fig


def write_report(results: Sequence[DetectorResult], table: pd.DataFrame, out: Path) -> Path:
    """``report.html``: the metrics table then one figure per file (plotly.js embedded once)."""
    out.mkdir(parents=True, exist_ok=True)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>MMLW evaluation</title>",
        "<style>body{font-family:sans-serif} table{border-collapse:collapse}"
        " td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>",
        "<h1>MMLW evaluation</h1>",
        table.to_html(index=False, na_rep="-", float_format=lambda v: f"{v:.2f}"),
    ]
    names = [f.name for f in results[0].files] if results else []
    for i, name in enumerate(names):
        per_detector = [(r.label, r.files[i]) for r in results]
        fig = _figure(name, per_detector)
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))  # type: ignore[attr-defined]
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def write_all(results: Sequence[DetectorResult], out: Path, published: bool) -> pd.DataFrame:
    """Predictions, metrics table and report; returns the metrics table."""
    for r in results:
        write_predictions(r, out)
    table = metrics_table(results, published)
    write_metrics(table, out)
    write_report(results, table, out)
    return table
