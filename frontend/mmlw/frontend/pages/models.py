"""Models page: a machine's registered versions, aliases, metrics and training window,
how its shadow challenger compares with the champion, links to MLflow, a train button
that starts a job and follows it, and promotion (through the gate, or past it) and
rollback of the champion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from mmlw.detectors.default import DEFAULT_DETECTOR
from mmlw.frontend.api_client import ApiError
from mmlw.frontend.components import (
    badge,
    fmt_age,
    fmt_duration,
    fmt_number,
    fmt_time,
    message,
    table,
)
from mmlw.frontend.context import DashboardContext
from mmlw.frontend.links import machine_path, mlflow_run_url, mlflow_version_url
from mmlw.frontend.pages.machine_view import has_challenger
from mmlw.frontend.shadow import shadow_summary
from mmlw.schemas.jobs import JobOut
from mmlw.schemas.resources import ModelVersionOut

__all__ = ["layout", "register", "training_window", "version_rows"]

SHOWN_METRICS = ("n_readings", "train_flag_rate", "train_f1", "train_precision", "train_recall")
SHADOW_ROWS = 10_000  # the summary covers the newest this many readings both scored (per tick)


def layout(machine_id: str | None = None) -> html.Div:
    return html.Div(
        [
            dcc.Store(id="train-job"),
            dcc.Store(id="alias-moved"),
            html.H2("Models"),
            html.Div(
                [
                    dcc.Dropdown(
                        id="models-machine",
                        options=[{"label": machine_id, "value": machine_id}] if machine_id else [],
                        value=machine_id,
                        placeholder="choose a machine",
                        clearable=False,
                        className="filter",
                    ),
                    html.Span(id="models-machine-link"),
                ],
                className="controls",
            ),
            html.Div(id="models-body"),
            html.H3("Train a new version"),
            html.Div(
                [
                    html.Label(
                        ["detector ", dcc.Input(id="train-detector", value=DEFAULT_DETECTOR)]
                    ),
                    html.Label(
                        [
                            "on the last ",
                            dcc.Input(id="train-last-n", type="number", min=10, step=1, value=None),
                            " readings (empty: all)",
                        ]
                    ),
                    html.Button("Train", id="train-button", className="button train"),
                ],
                className="controls",
            ),
            html.Div(id="train-progress"),
            html.H3("Promote or roll back"),
            html.Div(
                [
                    html.Label(
                        [
                            "version ",
                            dcc.Input(id="alias-version", type="number", min=1, step=1),
                            " (empty: the challenger)",
                        ]
                    ),
                    dcc.Checklist(
                        id="promote-force",
                        options=[{"label": " skip the promotion gate", "value": "force"}],
                        value=[],
                        inline=True,
                    ),
                    html.Button("Promote to champion", id="promote-button", className="button"),
                    html.Button(
                        "Roll back to this version", id="rollback-button", className="button"
                    ),
                ],
                className="controls",
            ),
            html.Div(id="alias-result"),
        ],
        className="page page-models",
    )


def training_window(version: ModelVersionOut, jobs: list[JobOut]) -> str:
    """What the version was trained on, from the train job that registered it."""
    job = next(
        (j for j in jobs if j.result and j.result.get("version") == version.version),
        None,
    )
    rows = version.metrics.get("n_readings")
    size = f"{rows:,.0f} readings" if rows is not None else "? readings"
    if job is None:
        return size
    request = job.request
    parts = [size]
    if request.get("last_n"):
        parts.append(f"(newest {request['last_n']:,})")
    if request.get("start") or request.get("end"):
        parts.append(f"from {request.get('start') or 'the start'} to {request.get('end') or 'now'}")
    parts.append(f"job {str(job.id)[:8]}")
    return " ".join(parts)


def version_rows(
    versions: list[ModelVersionOut], jobs: list[JobOut], mlflow_url: str, now: datetime
) -> html.Table | html.P:
    versions = sorted(versions, key=lambda v: -v.version)
    cells = []
    for v in versions:
        metrics = ", ".join(
            f"{name.removeprefix('train_')} {fmt_number(v.metrics[name])}"
            for name in SHOWN_METRICS
            if name in v.metrics and name != "n_readings"
        )
        links: list[Any] = [
            html.A(
                "version",
                href=mlflow_version_url(mlflow_url, v.model_name, v.version),
                target="_blank",
            )
        ]
        if v.run_id:
            links += [
                " · ",
                html.A(
                    "run",
                    href=mlflow_run_url(mlflow_url, v.run_id),
                    target="_blank",
                    className="run-link",
                ),
            ]
        cells.append(
            [
                f"v{v.version}",
                html.Span([badge(a, "alias") for a in v.aliases] or "-"),
                v.detector or "-",
                fmt_number(v.threshold),
                metrics or "-",
                training_window(v, jobs),
                html.Span(
                    [fmt_time(v.created_at), html.Br(), html.Small(fmt_age(v.created_at, now))]
                ),
                html.Span(links),
            ]
        )
    return table(
        [
            "version",
            "aliases",
            "detector",
            "threshold",
            "training metrics",
            "trained on",
            "registered (UTC)",
            "MLflow",
        ],
        cells,
        row_ids=[str(v.version) for v in versions],
        empty="No model registered for this machine yet.",
        class_name="models",
    )


def job_progress(job: JobOut, now: datetime) -> html.Div:
    if job.state.finished:
        took = fmt_duration(job.duration_s)
        if job.error:
            return message(f"job {job.id} failed after {took}: {job.error}", "error")
        result = job.result or {}
        aliases = ", ".join(result.get("aliases", [])) or "no alias"
        return message(
            f"job {job.id} succeeded in {took}: version {result.get('version')} ({aliases})",
            "success",
        )
    since = job.started_at or job.created_at
    return message(
        f"job {job.id}: {job.state.value} for {fmt_duration((now - since).total_seconds())}"
    )


def register(app: Dash, context: DashboardContext) -> None:
    client = context.client

    @app.callback(
        Output("models-body", "children"),
        Output("models-machine", "options"),
        Output("models-machine-link", "children"),
        Input("models-machine", "value"),
        Input("tick", "n_intervals"),
        Input("train-job", "data"),
        Input("alias-moved", "data"),
        State("models-machine", "options"),
    )
    def refresh(
        machine_id: str | None,
        _tick: int | None,
        _job: str | None,
        _moved: int | None,
        shown_options: list[dict[str, str]] | None,
    ) -> tuple[Any, ...]:
        now = datetime.now(UTC)
        try:
            fresh = [{"label": m.id, "value": m.id} for m in client.machines()]
            options = no_update if fresh == shown_options else fresh
            if not machine_id:
                return message("Choose a machine."), options, ""
            versions = client.models(machine_id)
            jobs = client.jobs(machine_id, limit=200)
            shadow = (
                client.shadow(machine_id, limit=SHADOW_ROWS, max_points=10)  # the summary only
                if has_challenger(versions)
                else None
            )
        except ApiError as exc:
            return message(f"cannot read models: {exc}", "error"), [], ""
        link = dcc.Link("machine page", href=machine_path(machine_id))
        body: list[Any] = [version_rows(versions, jobs, context.mlflow_url, now)]
        if shadow is not None:
            body.insert(0, html.P(shadow_summary(shadow), id="models-shadow", className="note"))
        return html.Div(body), options, link

    @app.callback(
        Output("train-job", "data"),
        Output("train-progress", "children", allow_duplicate=True),
        Input("train-button", "n_clicks"),
        State("models-machine", "value"),
        State("train-detector", "value"),
        State("train-last-n", "value"),
        State("operator", "data"),
        prevent_initial_call=True,
    )
    def train(
        clicks: int | None,
        machine_id: str | None,
        detector: str | None,
        last_n: int | None,
        operator: dict[str, str] | None,
    ) -> tuple[Any, Any]:
        if not clicks:
            raise PreventUpdate
        if not machine_id:
            return None, message("Choose a machine first.", "error")
        options: dict[str, Any] = {"detector": (detector or DEFAULT_DETECTOR).strip()}
        if last_n:
            options["last_n"] = int(last_n)
        try:
            job = client.train(machine_id, options, (operator or {}).get("key"))
        except ApiError as exc:
            hint = " - enter your API key above" if exc.status in (401, 403) else ""
            return None, message(f"cannot start training: {exc}{hint}", "error")
        return str(job.id), job_progress(job, datetime.now(UTC))

    @app.callback(
        Output("train-progress", "children"),
        Input("tick", "n_intervals"),
        State("train-job", "data"),
        prevent_initial_call=True,
    )
    def follow(_tick: int | None, job_id: str | None) -> Any:
        if not job_id or ctx.triggered_id != "tick":
            raise PreventUpdate
        try:
            return job_progress(client.job(job_id), datetime.now(UTC))
        except ApiError as exc:
            return message(f"cannot read job {job_id}: {exc}", "error")

    @app.callback(
        Output("alias-result", "children"),
        Output("alias-moved", "data"),
        Input("promote-button", "n_clicks"),
        Input("rollback-button", "n_clicks"),
        State("models-machine", "value"),
        State("alias-version", "value"),
        State("promote-force", "value"),
        State("operator", "data"),
        prevent_initial_call=True,
    )
    def move_champion(
        _promote: int | None,
        _rollback: int | None,
        machine_id: str | None,
        version: int | None,
        force: list[str] | None,
        operator: dict[str, str] | None,
    ) -> tuple[Any, Any]:
        if ctx.triggered_id not in ("promote-button", "rollback-button"):
            raise PreventUpdate
        if not machine_id:
            return message("Choose a machine first.", "error"), no_update
        who = (operator or {}).get("name") or "dashboard"
        key = (operator or {}).get("key")
        try:
            if ctx.triggered_id == "rollback-button":
                if not version:
                    return message("Give the version to roll back to.", "error"), no_update
                moved = client.rollback(machine_id, int(version), who, key)
            else:
                gated = "force" not in (force or [])
                moved = client.promote(
                    machine_id, int(version) if version else None, who, gated, key
                )
        except ApiError as exc:
            hint = " - enter your API key above" if exc.status in (401, 403) else ""
            return message(f"not moved: {exc}{hint}", "error"), no_update
        event = moved["event"]
        text = f"champion v{event['from_version']} -> v{event['to_version']}: {event['reason']}"
        return message(text, "success"), event["id"]  # refreshes the versions table
