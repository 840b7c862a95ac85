"""``create_dashboard(settings)``: the Dash app. Nothing is built or fetched at import time.

Everything but the login page needs a session (:mod:`mmlw.frontend.login`); each
visitor's pages read the API with the key they logged in with (:mod:`mmlw.frontend.visitors`).
The shell holds the navigation, the operator's name and API key (browser session
storage; sent as ``X-API-Key`` on write actions only), and the refresh tick every page
listens to. Pages are routed by path: ``/``, ``/machines/<id>[?range=7d]``,
``/alerts[?machine=<id>]``, ``/models[/<id>]``, ``/jobs``. A page load gets its page with
the layout (no routing round trip), and plotly.js is fetched alongside the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import flask
import httpx
from dash import Dash, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from mmlw.frontend.api_client import ApiClient
from mmlw.frontend.context import DashboardContext
from mmlw.frontend.headers import content_security_policy, install_security_headers, script_hashes
from mmlw.frontend.links import mlflow_ui_url
from mmlw.frontend.login import LoginLink, admission, install_login
from mmlw.frontend.pages import alerts, jobs, machine, models, overview
from mmlw.frontend.sessions import LoginLimiter, VisitorSessions
from mmlw.frontend.visitors import page_callbacks, register_dispatchers
from mmlw.settings import Settings

__all__ = ["REFRESH_MS", "create_dashboard", "route"]

REFRESH_MS = 3_000
ASSETS = Path(__file__).parent / "assets"
NAVIGATION = (("/", "Overview"), ("/alerts", "Alerts"), ("/models", "Models"), ("/jobs", "Jobs"))
PAGES = (overview, machine, alerts, models, jobs)
# What dcc.Graph loads only once the first graph mounts (its code; plotly.js, 4.7 MB, at
# its window._dashPlotlyJSURL when served locally): fetched alongside the page instead,
# so that the graph then runs them from the browser's memory cache.
GRAPH_JS = (  # (path, attributes): plotly.js yields to what the page needs first
    ("_dash-component-suites/dash/dcc/async-graph.js", ""),
    ("_dash-component-suites/plotly/package_data/plotly.min.js", ' fetchpriority="low"'),
)
# Dash's bundled babel-polyfill (core-js 2) takes modern browsers' parseFloat, parseInt and
# String trim for broken (an outdated whitespace test) and replaces them with JavaScript
# ones some 30x slower, which plotly.js calls all the time: the page keeps the browser's.
# A session that ended (logout elsewhere, expiry, restart) makes Dash's requests answer
# 401: the page then reloads, which leads to the login page -- unless the page is already
# leaving (a form sent, e.g. "Log out": a reload then would cancel where it goes).
INDEX = """<!DOCTYPE html>
<html>
    <head>
        {%metas%}
        <title>{%title%}</title>
        {%favicon%}
        {%css%}
        PRELOADS
        <script>
        window._mmlwNative = [
            [window, "parseFloat"], [window, "parseInt"], [Number, "parseFloat"],
            [Number, "parseInt"], [String.prototype, "trim"], [String.prototype, "trimStart"],
            [String.prototype, "trimEnd"]
        ].map(function (place) { return [place[0], place[1], place[0][place[1]]]; });
        var fetched = window.fetch, leaving = false;
        document.addEventListener("submit", function () { leaving = true; }, true);
        window.addEventListener("pagehide", function () { leaving = true; });
        window.addEventListener("pageshow", function () { leaving = false; });
        window.fetch = function () {
            return fetched.apply(this, arguments).then(function (response) {
                if (response.status === 401 && !leaving) { window.location.reload(); }
                return response;
            });
        };
        </script>
    </head>
    <body>
        {%app_entry%}
        <footer>
            {%config%}
            {%scripts%}
            <script>
            window._mmlwNative.forEach(function (kept) {
                if (kept[2]) kept[0][kept[1]] = kept[2];
            });
            </script>
            {%renderer%}
        </footer>
    </body>
</html>"""


def create_dashboard(
    settings: Settings,
    *,
    transport: httpx.BaseTransport | None = None,
    login_link: LoginLink | None = None,
    mlflow_url: str | None = None,
    refresh_ms: int = REFRESH_MS,
) -> Dash:
    """The dashboard for ``settings.dashboard``; it reads ``settings.dashboard.api_url``
    (through ``transport``, if given) with each visitor's key. ``login_link`` is a
    one-time login (``mmlw demo``'s)."""
    board = settings.dashboard
    mlflow = mlflow_url or mlflow_ui_url(settings)

    def client_for(key: str | None) -> ApiClient:
        return ApiClient(board.api_url, read_key=key, transport=transport)

    def context_for(client: ApiClient) -> DashboardContext:
        return DashboardContext(settings, client, mlflow, refresh_ms)

    context = context_for(client_for(None))  # shapes the app; never reads the API
    app = Dash(
        "mmlw-dashboard",
        title="MMLW",
        assets_folder=str(ASSETS),
        update_title="",
        serve_locally=True,
    )
    prefix = app.config.requests_pathname_prefix
    preloads = [
        f'<link rel="preload" href="{prefix}{js}" as="script"{priority}>'
        for js, priority in GRAPH_JS
    ]
    app.index_string = INDEX.replace("PRELOADS", "\n        ".join(preloads))
    app.validation_layout = html.Div(  # type: ignore[assignment]
        [
            shell(context),
            overview.layout(),
            machine.layout("machine"),
            alerts.layout(),
            models.layout(),
            jobs.layout(),
        ]
    )
    app.layout = lambda: shell(context, opened(_referrer(), app))
    _register_shell(app)
    register_dispatchers(app, PAGES, context)

    @app.server.route("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    admit = admission(client_for, lambda client: page_callbacks(PAGES, context_for(client)))
    install_login(
        app.server,
        settings,
        admit,
        sessions=VisitorSessions(board.session_hours * 3600),
        limiter=LoginLimiter(board.login_attempts_per_minute),
        link=login_link,
    )
    scripts = sorted(script_hashes(app.index_string)) + list(app.csp_hashes())
    install_security_headers(app.server, content_security_policy(scripts))
    return app


def shell(context: DashboardContext, page: tuple[str, Any] | None = None) -> html.Div:
    """The frame of every page; ``page`` (its address and layout) is drawn in it at once."""
    return html.Div(
        [
            dcc.Location(id="url"),
            dcc.Store(id="page-shown", data=page[0] if page else None),
            dcc.Store(id="operator", storage_type="session"),
            dcc.Interval(id="tick", interval=context.refresh_ms),
            html.Header(
                [
                    html.Span("MMLW", className="brand"),
                    html.Nav(
                        [
                            dcc.Link(label, href=href, className="nav-link")
                            for href, label in NAVIGATION
                        ]
                    ),
                    html.Div(
                        [
                            dcc.Input(
                                id="operator-name",
                                placeholder="your name",
                                persistence=True,
                                persistence_type="session",
                            ),
                            dcc.Input(
                                id="operator-key",
                                type="password",
                                placeholder="API key (for actions)",
                                autoComplete="off",
                            ),
                            html.Button("Use", id="operator-save", className="button"),
                            html.Button("Forget", id="operator-forget", className="button"),
                            html.Span(id="operator-state", className="operator-state"),
                            html.Form(
                                html.Button(
                                    "Log out", id="logout", type="submit", className="button"
                                ),
                                action="/logout",
                                method="post",
                                className="logout-form",
                            ),
                        ],
                        className="operator",
                    ),
                ],
                className="header",
            ),
            html.Main(page[1] if page else None, id="page", className="main"),
        ]
    )


def route(pathname: str | None, search: str | None = None) -> Any:
    """The page for a path (the path part of the dashboard's links)."""
    path = (pathname or "/").rstrip("/") or "/"
    query = {k: v[0] for k, v in parse_qs((search or "").lstrip("?")).items()}
    if path == "/":
        return overview.layout()
    if path.startswith("/machines/"):
        return machine.layout(unquote(path.removeprefix("/machines/")), query.get("range"))
    if path == "/alerts":
        return alerts.layout(query.get("machine"))
    if path == "/models" or path.startswith("/models/"):
        return models.layout(unquote(path.removeprefix("/models").lstrip("/")) or None)
    if path == "/jobs":
        return jobs.layout()
    return html.Div([html.H2("Not found"), html.P(f"No page at {pathname}.")], className="page")


def opened(referrer: str | None, app: Dash) -> tuple[str, Any] | None:
    """The page a browser opened, from the address that asked for the layout (the
    browser's Referer): served with the layout, it saves a routing round trip. None when
    the address is unknown or not the dashboard's; routing then draws the page."""
    if not referrer:
        return None
    address = urlsplit(referrer)
    if not address.path.startswith(app.config.requests_pathname_prefix):
        return None
    search = f"?{address.query}" if address.query else ""
    return _address(address.path, search), route(address.path, search)


def _referrer() -> str | None:
    return flask.request.referrer if flask.has_request_context() else None


def _address(pathname: str | None, search: str | None) -> str:
    return f"{pathname or '/'}{search or ''}"


def _register_shell(app: Dash) -> None:
    @app.callback(
        Output("page", "children"),
        Output("page-shown", "data"),
        Input("url", "pathname"),
        Input("url", "search"),
        State("page-shown", "data"),
    )
    def show(pathname: str | None, search: str | None, shown: str | None) -> Any:
        address = _address(pathname, search)
        if address == shown:  # the layout came with it
            raise PreventUpdate
        return route(pathname, search), address

    @app.callback(
        Output("operator", "data"),
        Output("operator-key", "value"),
        Input("operator-save", "n_clicks"),
        Input("operator-forget", "n_clicks"),
        State("operator-name", "value"),
        State("operator-key", "value"),
        State("operator", "data"),
        prevent_initial_call=True,
    )
    def remember(
        save: int | None,
        forget: int | None,
        name: str | None,
        key: str | None,
        current: dict[str, str] | None,
    ) -> tuple[dict[str, str], str]:
        if ctx.triggered_id == "operator-forget":
            return {}, ""
        if not save:
            raise PreventUpdate
        kept = dict(current or {})
        kept["name"] = (name or "").strip()
        if key:
            kept["key"] = key.strip()
        return kept, ""

    @app.callback(Output("operator-state", "children"), Input("operator", "data"))
    def describe(operator: dict[str, str] | None) -> str:
        operator = operator or {}
        if operator.get("key"):
            name = operator.get("name") or "dashboard"
            return f"acting as {name} (key set for this session)"
        return "read-only: enter your name and API key to act"
