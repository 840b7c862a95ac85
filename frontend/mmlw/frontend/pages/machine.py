"""Machine page: sensor traces, anomaly score vs threshold, contributions, champion model.

Large ranges are downsampled by the API (each sensor's min/max per time bucket, every
anomaly kept), and each sensor panel draws only its own sensor's extremes of those rows;
zooming fetches the zoomed window again at full detail. One drawing reads the API in
parallel where it can. The page refreshes on the shell's tick, but only re-draws when
the machine's counters or alerts changed.

Measured on the 2-core test machine (headless Chromium without a GPU): plotly's SVG traces
draw the downsampled ~4,000 rows x 8 sensors about three times faster than WebGL does in
software, so the figures switch to WebGL only above ``figures.WEBGL_FROM`` points.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dash import Dash, Input, Output, Patch, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from mmlw.frontend.api_client import ApiClient, ApiError, Page
from mmlw.frontend.components import badge, fmt_age, fmt_number, fmt_time, graph_config, message
from mmlw.frontend.context import DashboardContext
from mmlw.frontend.figures import (
    alert_periods,
    contributions_figure,
    empty_figure,
    score_figure,
    selection_marker,
    sensor_figure,
)
from mmlw.frontend.links import mlflow_run_url, mlflow_version_url, models_path
from mmlw.frontend.status import machine_row
from mmlw.frontend.timerange import (
    DEFAULT_RANGE,
    RANGES,
    RESET,
    parse_moment,
    window_for,
    zoom_window,
)
from mmlw.schemas.alerts import AlertOut
from mmlw.schemas.resources import MachineOut, ModelVersionOut, ReadingsOut, ScoresOut

__all__ = ["MachineView", "fetch_view", "layout", "register"]

BUCKETS = 300  # time buckets of the sensor plots: one per ~4 px of a wide screen
SCORE_BUCKETS = 600  # the score plot is one trace: twice the detail costs little
MAX_POINTS = 100_000  # the API's cap on max_points


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


@dataclass(frozen=True)
class MachineView:
    """Everything the machine page draws, read from the API in one go."""

    machine: MachineOut
    alerts: list[AlertOut]
    readings: Page[ReadingsOut]
    scores: Page[ScoresOut]
    champion: ModelVersionOut | None
    alerts_error: str | None = None
    explained: Any = None  # the contributions figure of the selected moment
    marked: datetime | None = None  # that moment (None: nothing to explain)


def signature(machine: MachineOut, alerts: list[AlertOut]) -> list[Any]:
    """What must change before a refresh re-draws the page."""
    return [
        machine.n_readings,
        machine.n_scored,
        machine.champion_version,
        [[a.id, a.state, a.acknowledged] for a in alerts],
    ]


def fetch_view(
    client: ApiClient,
    machine: MachineOut,
    alerts: list[AlertOut],
    start: datetime | None,
    end: datetime | None,
    alerts_error: str | None = None,
    selected: str | None = None,
) -> MachineView:
    """Readings, scores and the champion model in parallel (the API downsamples), and
    the contributions of ``selected`` (default: :func:`default_moment`) once the scores
    are in, while the readings are still on their way."""
    reading_points = _reading_points(machine)
    with ThreadPoolExecutor(max_workers=4) as pool:
        readings = pool.submit(
            client.readings, machine.id, start=start, end=end, max_points=reading_points
        )
        scores = pool.submit(
            client.scores, machine.id, start=start, end=end, max_points=3 * SCORE_BUCKETS + 2
        )
        models = pool.submit(client.models, machine.id) if machine.champion_version else None
        explained = pool.submit(
            lambda: explain_moment(
                client, machine.id, selected or default_moment(scores.result().item)
            )
        )
        champion = None
        if models is not None:
            champion = next(
                (v for v in models.result() if v.version == machine.champion_version), None
            )
        figure, marked = explained.result()
        return MachineView(
            machine,
            alerts,
            readings.result(),
            scores.result(),
            champion,
            alerts_error,
            explained=figure,
            marked=marked,
        )


def _reading_points(machine: MachineOut) -> int:
    return min(MAX_POINTS, 2 * max(len(machine.columns), 1) * BUCKETS + 2)


def reading_buckets(view: MachineView) -> int | None:
    """The time buckets the API downsampled the readings in (None: all rows came)."""
    if view.readings.total <= len(view.readings.item.timestamps):
        return None
    return max(1, (_reading_points(view.machine) - 2) // (2 * max(len(view.machine.columns), 1)))


def default_moment(scores: ScoresOut) -> str | None:
    """The newest anomalous reading in range, else the newest reading."""
    if not scores.timestamps:
        return None
    for moment, flagged in zip(reversed(scores.timestamps), reversed(scores.flags), strict=True):
        if flagged:
            return moment.isoformat()
    return scores.timestamps[-1].isoformat()


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


def _machine_alerts(client: ApiClient, machine_id: str) -> tuple[list[AlertOut], str | None]:
    try:
        return client.alerts(machine_id=machine_id, limit=500), None
    except ApiError as exc:
        return [], f"alerts unavailable ({exc})"


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
        current = signature(machine, _machine_alerts(client, machine_id)[0])
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
            alerts_read = pool.submit(_machine_alerts, client, machine_id)
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
            view.scores.item, periods, selected=marked, log_y="log" in log, revision=revision
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


def explain_moment(
    client: ApiClient, machine_id: str, moment: str | None
) -> tuple[Any, datetime | None]:
    """The contributions figure of the scored reading nearest ``moment`` and its time."""
    if moment is None:
        return empty_figure("no scored readings in this range"), None
    at = parse_moment(moment)
    try:
        near = client.scores(
            machine_id,
            start=at - timedelta(seconds=1),
            end=at + timedelta(seconds=1),
            top=32,
            limit=1_000,
        ).item
    except ApiError as exc:
        return empty_figure(str(exc)), None
    if not near.timestamps:
        return empty_figure("no score at the selected moment"), None
    i = min(range(len(near.timestamps)), key=lambda k: abs(near.timestamps[k] - at))
    figure = contributions_figure(
        near.top_sensors[i],
        at=near.timestamps[i],
        score=near.scores[i],
        threshold=near.thresholds[i],
    )
    return figure, near.timestamps[i]


def _failed(text: str) -> tuple[Any, ...]:
    problem = empty_figure(text)
    return problem, problem, problem, message(text, "error"), "", None
