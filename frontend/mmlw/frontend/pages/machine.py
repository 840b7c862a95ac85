"""Machine page: sensor traces, anomaly score vs threshold, contributions, champion model
(and a challenger's shadow score next to the champion's, with how often they disagree).

Large ranges are downsampled by the API (each sensor's min/max per time bucket, every
anomaly kept), and each sensor panel draws only its own sensor's extremes of those rows;
zooming fetches the zoomed window again at full detail (what one drawing reads:
:mod:`.machine_view`). The page refreshes on the shell's tick, but only re-draws when
the machine's counters or alerts changed.

Measured on the 2-core test machine (headless Chromium without a GPU): plotly's SVG traces
draw the downsampled ~4,000 rows x 8 sensors about three times faster than WebGL does in
software, so the figures switch to WebGL only above ``figure_style.WEBGL_FROM`` points.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from dash import Dash, Input, Output, Patch, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from mmlw.frontend.api_client import ApiError
from mmlw.frontend.components import badge, fmt_age, fmt_number, fmt_time, graph_config, message
from mmlw.frontend.context import DashboardContext
from mmlw.frontend.figure_style import empty_figure
from mmlw.frontend.figures import score_figure, sensor_figure
from mmlw.frontend.links import mlflow_run_url, mlflow_version_url, models_path
from mmlw.frontend.overlays import alert_periods, selection_marker
from mmlw.frontend.pages.machine_view import (
    MachineView,
    explain_moment,
    fetch_view,
    machine_alerts,
    reading_buckets,
    signature,
)
from mmlw.frontend.shadow import shadow_summary
from mmlw.frontend.status import machine_row
from mmlw.frontend.timerange import (
    DEFAULT_RANGE,
    RANGES,
    RESET,
    parse_moment,
    window_for,
    zoom_window,
)

__all__ = ["header", "layout", "note", "register"]


def layout(machine_id: str, range_key: str | None = None) -> html.Div:
    """The page's skeleton; ``range_key`` (``?range=7d``) picks the initial time range."""
    return html.Div(
        [
            dcc.Store(id="machine-id", data=machine_id),
            dcc.Store(id="machine-window"),
            dcc.Store(id="machine-selected"),
            dcc.Store(id="machine-signature"),
            dcc.Store(id="machine-refresh"),
            html.Div(
                [html.H2(machine_id), html.Div(id="machine-header", className="machine-header")],
                className="page-title",
            ),
            html.Div(
                [
                    dcc.RadioItems(
                        id="machine-range",
                        options=[{"label": label, "value": k} for k, (label, _) in RANGES.items()],
                        value=range_key if range_key in RANGES else DEFAULT_RANGE,
                        inline=True,
                    ),
                    dcc.Checklist(
                        id="machine-log",
                        options=[{"label": "log score axis", "value": "log"}],
                        value=["log"],
                        inline=True,
                    ),
                    html.Span(id="machine-note", className="note"),
                ],
                className="controls",
            ),
            html.Div(
                [
                    dcc.Graph(
                        id="score-graph",
                        figure=empty_figure("loading ..."),
                        config=graph_config(),
                        className="score-graph",
                    ),
                    dcc.Graph(
                        id="contributions-graph",
                        figure=empty_figure("loading ..."),
                        config=graph_config(),
                        className="contributions-graph",
                    ),
                ],
                className="row",
            ),
            dcc.Graph(
                id="sensor-graph",
                figure=empty_figure("loading ...", height=400),
                config=graph_config(),
                className="sensor-graph",
            ),
        ],
        className="page page-machine",
    )


def header(view: MachineView, mlflow_url: str, now: datetime) -> list[Any]:
    row = machine_row(view.machine, view.scores.item, view.alerts, now=now)
    m, champion = view.machine, view.champion
    parts: list[Any] = [
        badge(row.status.value),
        html.Span(
            f"last reading {fmt_time(m.last_reading_at)} UTC (received {fmt_age(m.last_seen, now)})"
        ),
        html.Span(f"{m.n_readings:,} readings, {m.n_scored:,} scored"),
        dcc.Link(
            f"{row.open_alerts} open alert(s)",
            href=f"/alerts?machine={m.id}",
            className="alerts-link",
        ),
    ]
    if champion is None:
        parts.append(html.Span("no champion model yet", className="model-info"))
    else:
        details: list[Any] = [
            f"champion v{champion.version} ({champion.detector or '?'}, "
            f"threshold {fmt_number(champion.threshold)}) ",
            html.A(
                "MLflow run",
                href=mlflow_run_url(mlflow_url, champion.run_id) if champion.run_id else None,
                target="_blank",
                className="mlflow-run-link",
            ),
            " · ",
            html.A(
                "model version",
                href=mlflow_version_url(mlflow_url, champion.model_name, champion.version),
                target="_blank",
            ),
            " · ",
            dcc.Link("all versions", href=models_path(m.id)),
        ]
        parts.append(html.Span(details, className="model-info", id="champion-info"))
    if view.shadow is not None:
        parts.append(
            html.Span(shadow_summary(view.shadow), className="model-info", id="shadow-info")
        )
    if view.alerts_error:
        parts.append(message(view.alerts_error, "warning"))
    return parts


def note(view: MachineView) -> str:
    shown, total = len(view.readings.item.timestamps), view.readings.total
    if total > shown:
        return (
            f"{total:,} readings in range, drawn as {shown:,} points "
            "(each sensor's min/max per time bucket; anomalies kept) - zoom in for detail"
        )
    return f"{total:,} readings in range"


def register(app: Dash, context: DashboardContext) -> None:
    client = context.client

    @app.callback(
        Output("machine-window", "data"),
        Input("score-graph", "relayoutData"),
        Input("sensor-graph", "relayoutData"),
        Input("machine-range", "value"),
        prevent_initial_call=True,
    )
    def follow_zoom(
        score_zoom: dict[str, Any] | None, sensor_zoom: dict[str, Any] | None, _range: str
    ) -> list[str] | None:
        if ctx.triggered_id == "machine-range":
            return None
        meaning = zoom_window(score_zoom if ctx.triggered_id == "score-graph" else sensor_zoom)
        if meaning is None:
            raise PreventUpdate
        return None if meaning == RESET else list(meaning)

    @app.callback(
        Output("machine-selected", "data"),
        Input("score-graph", "clickData"),
        Input("sensor-graph", "clickData"),
        prevent_initial_call=True,
    )
    def select_moment(
        score_click: dict[str, Any] | None, sensor_click: dict[str, Any] | None
    ) -> str:
        click = score_click if ctx.triggered_id == "score-graph" else sensor_click
        if not click or not click.get("points"):
            raise PreventUpdate
        return parse_moment(str(click["points"][0]["x"])).isoformat()

    @app.callback(
        Output("machine-refresh", "data"),
        Input("tick", "n_intervals"),
        State("machine-id", "data"),
        State("machine-signature", "data"),
        prevent_initial_call=True,
    )
    def poll(_tick: int | None, machine_id: str, drawn: list[Any] | None) -> list[Any]:
        """Cheap: re-draw only when the machine's counters or alerts changed. (The drawing
        is its own callback: a tick never cancels a drawing that is still on its way.)"""
        if drawn is None:
            raise PreventUpdate
        try:
            machine = client.machine(machine_id)
        except ApiError as exc:
            raise PreventUpdate from exc
        current = signature(machine, machine_alerts(client, machine_id)[0])
        if current == drawn:
            raise PreventUpdate
        return current

    @app.callback(
        Output("score-graph", "figure"),
        Output("sensor-graph", "figure"),
        Output("contributions-graph", "figure"),
        Output("machine-header", "children"),
        Output("machine-note", "children"),
        Output("machine-signature", "data"),
        Input("machine-id", "data"),
        Input("machine-range", "value"),
        Input("machine-window", "data"),
        Input("machine-log", "value"),
        Input("machine-refresh", "data"),
        State("machine-selected", "data"),
    )
    def draw(
        machine_id: str,
        range_key: str,
        window: list[str] | None,
        log: list[str],
        _refresh: list[Any] | None,
        selected: str | None,
    ) -> tuple[Any, ...]:
        now = datetime.now(UTC)
        with ThreadPoolExecutor(max_workers=1) as pool:
            alerts_read = pool.submit(machine_alerts, client, machine_id)
            try:
                machine = client.machine(machine_id)
            except ApiError as exc:
                return _failed(f"cannot read {machine_id}: {exc}")
            alerts, alerts_error = alerts_read.result()
        current = signature(machine, alerts)
        start: datetime | None
        end: datetime | None
        if window:
            start, end = parse_moment(window[0]), parse_moment(window[1])
        else:
            start, end = window_for(range_key, machine.last_reading_at)
        try:
            view = fetch_view(client, machine, alerts, start, end, alerts_error, selected)
        except ApiError as exc:
            return _failed(str(exc))
        marked = view.marked
        periods = alert_periods(alerts)
        revision = f"{machine_id}:{range_key}:{window}"
        scores = score_figure(
            view.scores.item,
            periods,
            selected=marked,
            log_y="log" in log,
            revision=revision,
            shadow=view.shadow,
        )
        sensors = sensor_figure(
            view.readings.item,
            view.scores.item,
            periods,
            selected=marked,
            revision=revision,
            buckets=reading_buckets(view),
        )
        return (
            scores,
            sensors,
            view.explained,
            header(view, context.mlflow_url, now),
            note(view),
            current,
        )

    @app.callback(
        Output("contributions-graph", "figure", allow_duplicate=True),
        Output("score-graph", "figure", allow_duplicate=True),
        Output("sensor-graph", "figure", allow_duplicate=True),
        Input("machine-selected", "data"),
        State("machine-id", "data"),
        prevent_initial_call=True,
    )
    def explain(selected: str | None, machine_id: str) -> tuple[Any, ...]:
        """A click: explain that moment and move the plots' marker there (no re-draw)."""
        figure, at = explain_moment(client, machine_id, selected)
        if at is None:
            return figure, no_update, no_update
        marker = selection_marker(at)
        score_patch, sensor_patch = Patch(), Patch()
        score_patch["layout"]["shapes"][0] = marker
        sensor_patch["layout"]["shapes"][0] = marker
        return figure, score_patch, sensor_patch


def _failed(text: str) -> tuple[Any, ...]:
    problem = empty_figure(text)
    return problem, problem, problem, message(text, "error"), "", None
