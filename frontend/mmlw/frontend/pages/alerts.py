"""Alerts page: open / acknowledged / resolved alerts, filters, acknowledge and silence.

Every write goes to the API with the operator's key from the page's session storage.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from mmlw.frontend.api_client import ApiClient, ApiError
from mmlw.frontend.components import badge, fmt_age, fmt_number, fmt_time, message, table
from mmlw.frontend.context import DashboardContext
from mmlw.frontend.links import machine_path
from mmlw.schemas.alerts import AlertOut, SilenceOut

__all__ = ["VIEWS", "layout", "register", "select_alerts"]

VIEWS = {
    "open": "open, not acknowledged",
    "acknowledged": "acknowledged",
    "resolved": "resolved",
    "all": "all",
}
SEVERITIES = ("critical", "warning", "info")
SILENCE_FOR = {"1h": timedelta(hours=1), "4h": timedelta(hours=4), "24h": timedelta(days=1)}
ACTIONS = ("alert-ack", "alert-unack", "alert-resolve", "alert-silence", "silence-expire")
ACTION_STORE = "alerts-click"
"""Where ``assets/actions.js`` leaves a click on a row's button: ``{type, index, at}``.
The refresh redraws the tables; buttons read through Dash's ``n_clicks`` lost a click
that landed while an answer replaced them (seen in CI: a Silence click with no callback),
so one listener on the document reads the clicked button's data attributes instead."""


def layout(machine_id: str | None = None) -> html.Div:
    return html.Div(
        [
            dcc.Store(id="alerts-version", data=0),
            dcc.Store(id=ACTION_STORE),
            html.H2("Alerts"),
            html.Div(
                [
                    dcc.RadioItems(
                        id="alerts-view",
                        options=[{"label": label, "value": k} for k, label in VIEWS.items()],
                        value="open",
                        inline=True,
                    ),
                    dcc.Dropdown(
                        id="alerts-machine",
                        options=[{"label": machine_id, "value": machine_id}] if machine_id else [],
                        value=machine_id,
                        placeholder="all machines",
                        className="filter",
                    ),
                    dcc.Dropdown(
                        id="alerts-severity",
                        options=[{"label": s, "value": s} for s in SEVERITIES],
                        placeholder="all severities",
                        className="filter",
                    ),
                    html.Label(
                        [
                            "silence for ",
                            dcc.Dropdown(
                                id="alerts-silence-for",
                                options=[{"label": k, "value": k} for k in SILENCE_FOR],
                                value="1h",
                                clearable=False,
                                className="filter filter-small",
                            ),
                        ],
                        className="inline-label",
                    ),
                ],
                className="controls",
            ),
            html.Div(id="alerts-feedback"),
            html.Div(message("loading ..."), id="alerts-body"),
            html.H3("Silences"),
            html.Div(id="silences-body"),
        ],
        className="page page-alerts",
    )


def select_alerts(alerts: list[AlertOut], view: str) -> list[AlertOut]:
    """The alerts a view shows (the API filters machine, severity and open/resolved)."""
    if view == "open":
        return [a for a in alerts if a.state != "resolved" and not a.acknowledged]
    if view == "acknowledged":
        return [a for a in alerts if a.state != "resolved" and a.acknowledged]
    if view == "resolved":
        return [a for a in alerts if a.state == "resolved"]
    return alerts


def _api_state(view: str) -> str | None:
    return {"open": "open", "acknowledged": "open", "resolved": "resolved"}.get(view)


def _button(label: str, kind: str, target: int) -> html.Button:
    data: dict[str, Any] = {"data-action": kind, "data-target": target, "data-store": ACTION_STORE}
    return html.Button(label, className=f"button {kind}", type="button", **data)


def alert_rows(alerts: list[AlertOut], now: datetime) -> html.Table | html.P:
    cells = []
    for a in alerts:
        state = [badge(a.state)]
        if a.acknowledged:
            state.append(badge("acknowledged", "acknowledged"))
        if a.silenced:
            state.append(badge("silenced", "silenced"))
        actions = []
        if a.state != "resolved":
            if a.acknowledged:
                actions.append(_button("Unacknowledge", "alert-unack", a.id))
            else:
                actions.append(_button("Acknowledge", "alert-ack", a.id))
            actions.append(_button("Silence", "alert-silence", a.id))
            actions.append(_button("Resolve", "alert-resolve", a.id))
        top = ", ".join(f"{c.sensor} ({c.contribution:.3g})" for c in a.top_sensors[:3])
        acked = f"{a.acknowledged_by} {fmt_age(a.acknowledged_at, now)}" if a.acknowledged else "-"
        cells.append(
            [
                f"#{a.id}",
                badge(a.severity),
                html.Span(state),
                dcc.Link(a.machine_id, href=machine_path(a.machine_id)),
                html.Span([a.rule, html.Br(), html.Small(a.summary)]),
                html.Span(
                    [fmt_time(a.started_at), html.Br(), html.Small(fmt_age(a.started_at, now))]
                ),
                fmt_time(a.resolved_at),
                f"{fmt_number(a.last_score)} / {fmt_number(a.threshold)}",
                top or "-",
                acked,
                html.Span(actions, className="actions"),
            ]
        )
    return table(
        [
            "id",
            "severity",
            "state",
            "machine",
            "rule",
            "started (UTC)",
            "resolved",
            "score / threshold",
            "top sensors",
            "acknowledged",
            "",
        ],
        cells,
        row_ids=[str(a.id) for a in alerts],
        empty="No alerts in this view.",
        class_name="alerts",
    )


def silence_rows(silences: list[SilenceOut], now: datetime) -> html.Table | html.P:
    cells = [
        [
            f"#{s.id}",
            ", ".join(f"{k}={v}" for k, v in s.matchers.items()),
            fmt_time(s.starts_at),
            f"{fmt_time(s.ends_at)} ({fmt_age(s.ends_at, now)})",
            s.created_by,
            s.comment or "",
            badge("active" if s.active else "expired"),
            _button("Expire", "silence-expire", s.id) if s.active else "",
        ]
        for s in silences
    ]
    return table(
        ["id", "matches", "from", "until", "by", "comment", "", ""],
        cells,
        row_ids=[str(s.id) for s in silences],
        empty="No silences.",
        class_name="silences",
    )


def clicked(click: object) -> tuple[str, int]:
    """The action and its target from the page's click store (it comes from the browser:
    anything but a row button's click changes nothing).

    >>> clicked({"type": "alert-ack", "index": 7, "at": 1})
    ('alert-ack', 7)
    >>> clicked({"type": "alert-ack", "index": "7; drop"})
    Traceback (most recent call last):
    dash.exceptions.PreventUpdate
    """
    if isinstance(click, dict):
        kind, target = click.get("type"), click.get("index")
        if kind in ACTIONS and isinstance(target, int) and not isinstance(target, bool):
            return kind, target
    raise PreventUpdate


def _act(
    client: ApiClient, kind: str, target: int, operator: dict[str, str], silence_for: str
) -> str:
    by, key = operator.get("name") or "dashboard", operator.get("key")
    if kind == "alert-ack":
        client.acknowledge(target, by, key)
        return f"alert #{target} acknowledged by {by}"
    if kind == "alert-unack":
        client.unacknowledge(target, key)
        return f"alert #{target} no longer acknowledged"
    if kind == "alert-resolve":
        client.resolve(target, by, key)
        return f"alert #{target} resolved by {by}"
    if kind == "alert-silence":
        alert = client.alert(target)
        until = datetime.now(UTC) + SILENCE_FOR[silence_for]
        matchers = {"machine_id": alert.machine_id, "rule": alert.rule}
        silence = client.silence(
            matchers, until, by, key, comment=f"from the dashboard, alert #{target}"
        )
        return (
            f"silence #{silence.id} for {alert.machine_id} / {alert.rule} "
            f"until {until:%Y-%m-%d %H:%M} UTC"
        )
    client.expire_silence(target, key)
    return f"silence #{target} expired"


def register(app: Dash, context: DashboardContext) -> None:
    client = context.client

    @app.callback(
        Output("alerts-body", "children"),
        Output("silences-body", "children"),
        Output("alerts-machine", "options"),
        Input("tick", "n_intervals"),
        Input("alerts-view", "value"),
        Input("alerts-machine", "value"),
        Input("alerts-severity", "value"),
        Input("alerts-version", "data"),
        State("alerts-machine", "options"),
    )
    def refresh(
        _tick: int | None,
        view: str,
        machine_id: str | None,
        severity: str | None,
        _v: int,
        shown_options: list[dict[str, str]] | None,
    ) -> tuple[Any, Any, Any]:
        now = datetime.now(UTC)
        try:
            alerts = client.alerts(
                machine_id=machine_id, severity=severity, state=_api_state(view), limit=500
            )
            silences = client.silences()
            machines = [m.id for m in client.machines()]
        except ApiError as exc:
            problem = message(f"cannot read alerts: {exc}", "error")
            return problem, "", []
        options = [{"label": m, "value": m} for m in machines]
        keep = no_update if options == shown_options else options  # an open list stays open
        return alert_rows(select_alerts(alerts, view), now), silence_rows(silences, now), keep

    @app.callback(
        Output("alerts-feedback", "children"),
        Output("alerts-version", "data"),
        Input(ACTION_STORE, "data"),
        State("operator", "data"),
        State("alerts-silence-for", "value"),
        State("alerts-version", "data"),
        prevent_initial_call=True,
    )
    def act(
        click: dict[str, Any] | None,
        operator: dict[str, str] | None,
        silence_for: str,
        version: int | None,
    ) -> tuple[Any, int]:
        kind, target = clicked(click)
        try:
            done = _act(client, kind, target, operator or {}, silence_for)
        except ApiError as exc:
            hint = " - enter your API key above" if exc.status in (401, 403) else ""
            return message(f"{exc}{hint}", "error"), (version or 0) + 1
        return message(done, "success"), (version or 0) + 1
