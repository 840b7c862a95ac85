"""Overview: every machine, the worst on top, with status, score sparkline and open alerts."""

from __future__ import annotations

from datetime import UTC, datetime

from dash import Dash, Input, Output, dcc, html

from mmlw.frontend.api_client import ApiClient, ApiError
from mmlw.frontend.components import (
    badge,
    fmt_age,
    fmt_number,
    fmt_time,
    graph_config,
    message,
    table,
)
from mmlw.frontend.context import DashboardContext
from mmlw.frontend.figures import sparkline
from mmlw.frontend.links import machine_path
from mmlw.frontend.status import MachineRow, machine_row, worst_first

__all__ = ["fetch_rows", "layout", "register"]

SPARKLINE_POINTS = 300


def layout() -> html.Div:
    return html.Div(
        [
            html.H2("Machines"),
            html.P(
                "Worst first: alerting, anomalous (newest reading over its threshold), "
                "no data (silent for 5 min), no model yet, normal.",
                className="hint",
            ),
            html.Div(message("loading ..."), id="overview-body"),
        ],
        className="page page-overview",
    )


def fetch_rows(client: ApiClient, now: datetime) -> tuple[list[MachineRow], str | None]:
    """The overview's rows, worst first, and a warning when alerts could not be read:
    three API requests, however many machines there are."""
    machines = client.machines()
    warning = None
    try:
        alerts = client.alerts(state="open")
    except ApiError as exc:
        alerts, warning = [], f"alerts unavailable ({exc})"
    recents = {s.machine_id: s for s in client.latest_scores(SPARKLINE_POINTS)}
    rows = [machine_row(m, recents.get(m.id), alerts, now=now) for m in machines]
    return worst_first(rows), warning


def render(rows: list[MachineRow], now: datetime) -> html.Div:
    header = [
        "status",
        "machine",
        "last reading",
        "score vs threshold",
        "",
        "open alerts",
        "model",
        "readings",
    ]
    cells = []
    for row in rows:
        m = row.machine
        cells.append(
            [
                badge(row.status.value),
                dcc.Link(m.id, href=machine_path(m.id), className="machine-link"),
                html.Span(
                    [fmt_time(m.last_reading_at), html.Br(), fmt_age(m.last_seen, now)],
                    title="reading's own time (UTC); received",
                ),
                dcc.Graph(
                    id={"type": "sparkline", "index": m.id},
                    figure=sparkline(row.recent),
                    config=graph_config(static=True),
                    className="sparkline",
                )
                if row.recent
                else "-",
                f"{fmt_number(row.score)} / {fmt_number(row.threshold)}",
                badge(str(row.open_alerts), "alerts" if row.open_alerts else "zero"),
                f"v{m.champion_version}" if m.champion_version else "-",
                f"{m.n_readings:,} ({m.n_scored:,} scored)",
            ]
        )
    return html.Div(
        table(
            header,
            cells,
            row_ids=[r.machine.id for r in rows],
            row_classes=[f"status-{r.status.value.replace(' ', '-')}" for r in rows],
            empty="No machine has sent readings yet.",
            class_name="overview",
        )
    )


def register(app: Dash, context: DashboardContext) -> None:
    @app.callback(Output("overview-body", "children"), Input("tick", "n_intervals"))
    def refresh(_tick: int | None) -> html.Div:
        now = datetime.now(UTC)
        try:
            rows, warning = fetch_rows(context.client, now)
        except ApiError as exc:
            return message(f"cannot read the API: {exc}", "error")
        body = render(rows, now)
        return html.Div([message(warning, "warning"), body]) if warning else body
