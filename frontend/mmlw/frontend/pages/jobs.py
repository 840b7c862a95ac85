"""Jobs page: training jobs, newest first, with state, timing and outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dash import Dash, Input, Output, dcc, html

from mmlw.frontend.api_client import ApiError
from mmlw.frontend.components import badge, fmt_age, fmt_duration, fmt_time, message, table
from mmlw.frontend.context import DashboardContext
from mmlw.frontend.links import machine_path, models_path
from mmlw.schemas.jobs import JobOut

__all__ = ["job_rows", "layout", "register"]


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("Training jobs"),
            html.Div(message("loading ..."), id="jobs-body"),
        ],
        className="page page-jobs",
    )


def job_rows(jobs: list[JobOut], now: datetime) -> html.Table | html.P:
    cells = []
    for job in jobs:
        if job.state.finished:
            duration = fmt_duration(job.duration_s)
        elif job.started_at:
            duration = f"{fmt_duration((now - job.started_at).total_seconds())} so far"
        else:
            duration = "-"
        outcome: Any = "-"
        if job.error:
            outcome = html.Span(job.error, className="error-text")
        elif job.result and "progress" in job.result:  # a running tune job
            outcome = "{done} of {total} configs".format(**job.result["progress"])
        elif job.result and "rows" in job.result:  # a tune job: the ranking
            best = next((r["label"] for r in job.result["rows"] if not r.get("error")), "-")
            outcome = f"{job.result.get('n_configs')} configs by {job.result.get('metric')}: {best}"
        elif job.result:
            outcome = dcc.Link(
                f"version {job.result.get('version')}", href=models_path(job.machine_id)
            )
        request = job.request
        cells.append(
            [
                html.Code(str(job.id)[:8], title=str(job.id)),
                dcc.Link(job.machine_id, href=machine_path(job.machine_id)),
                f"{job.kind.value} {request.get('detector', '')}".strip(),
                badge(job.state.value),
                html.Span(
                    [fmt_time(job.created_at), html.Br(), html.Small(fmt_age(job.created_at, now))]
                ),
                fmt_time(job.started_at),
                fmt_time(job.finished_at),
                duration,
                outcome,
            ]
        )
    return table(
        [
            "job",
            "machine",
            "kind",
            "state",
            "queued (UTC)",
            "started",
            "finished",
            "duration",
            "outcome",
        ],
        cells,
        row_ids=[str(j.id) for j in jobs],
        empty="No training jobs yet.",
        class_name="jobs",
    )


def register(app: Dash, context: DashboardContext) -> None:
    @app.callback(Output("jobs-body", "children"), Input("tick", "n_intervals"))
    def refresh(_tick: int | None) -> Any:
        try:
            jobs = context.client.jobs(limit=200)
        except ApiError as exc:
            return message(f"cannot read jobs: {exc}", "error")
        return job_rows(jobs, datetime.now(UTC))
