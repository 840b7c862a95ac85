"""Outputs of a tuning: ``ranking.csv``, a plotly chart (``tuning.html`` + figure JSON), and
a parent MLflow run with one child run per config (params, metrics)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mmlw.schemas.tuning import TuneRequest, TuneRow
from mmlw.settings import Settings

if TYPE_CHECKING:
    from mmlw.services.tuning import Scored

__all__ = ["log_tuning", "output_dir", "tuning_figure", "write_outputs"]


def output_dir(settings: Settings, machine_id: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    return settings.data_dir / "tuning" / f"{machine_id}-{stamp}"


def tuning_figure(rows: Sequence[TuneRow], summary: Mapping[str, Any]) -> Any:
    """The ranked configs (bars ``#rank detector``, the whole config on hover): ranking
    metric, false-alarm rate, fit and score time."""
    from mmlw.services.charts import bar_panels

    done = [r for r in rows if r.error is None]
    metric = str(summary["metric"])
    return bar_panels(
        [f"#{r.rank} {r.detector}" for r in done],
        [
            (f"{metric} (held-out)", [r.metric for r in done]),
            ("false-alarm rate", [r.false_alarm_rate for r in done]),
            ("fit time (s)", [r.fit_time_s for r in done]),
            ("score time (s)", [r.score_time_s for r in done]),
        ],
        f"configuration ranking on {summary['machine_id']}: {len(done)} configs, "
        f"{summary['n_train']} training + {summary['n_test']} held-out readings",
        height=480,
        hover=[r.label for r in done],
    )


def write_outputs(rows: Sequence[TuneRow], summary: Mapping[str, Any], out: Path) -> dict[str, Any]:
    """Write ``ranking.csv`` and ``tuning.html`` under ``out``; return the figure as JSON."""
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([r.model_dump(exclude={"run_id"}) for r in rows]).to_csv(
        out / "ranking.csv", index=False
    )
    figure = tuning_figure(rows, summary)
    figure.write_html(out / "tuning.html", include_plotlyjs="cdn")
    return json.loads(figure.to_json())  # type: ignore[no-any-return]


def log_tuning(
    request: TuneRequest,
    summary: Mapping[str, Any],
    scored: Sequence[Scored],
    out: Path,
    settings: Settings,
    quantile: float,
) -> str:
    """A parent run (window, split, counters, the chart and ranking) and one child per
    config; each child's id is stored on its :class:`Scored`. Returns the parent's id."""
    from mmlw.registry.evaluation_runs import log_evaluation

    uri, root = settings.resolved_tracking_uri, settings.artifact_root
    common = {
        "machine_id": request.machine_id,
        "window.start": request.start,
        "window.end": request.end,
        "window.last_n": request.last_n,
        "train_fraction": request.train_fraction,
        "threshold_quantile": quantile,
    }
    parent = log_evaluation(
        uri,
        request.experiment,
        f"tuning of {request.machine_id}",
        {**common, "search": request.search, "seed": request.seed, "metric": summary["metric"]},
        {k: float(summary[k]) for k in ("n_configs", "features_computed", "features_requested")},
        out,
        [out / "ranking.csv", out / "tuning.html"],
        artifact_root=root,
        kind="tuning",
    )
    for rank, s in enumerate(scored, start=1):
        params = {
            **common,
            "detector.name": s.config.detector,
            **{f"detector.{k}": v for k, v in s.config.params.items()},
            **({"error": s.error} if s.error else {}),
        }
        s.run_id = log_evaluation(
            uri,
            request.experiment,
            s.config.label,
            params,
            {**s.metrics, "rank": float(rank)},
            out,
            [],
            artifact_root=root,
            parent_run_id=parent,
            kind="tuning",
        )
    return parent
