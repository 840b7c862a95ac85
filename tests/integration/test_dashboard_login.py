"""The dashboard's login, against the real API (keys with scopes in the store): without a
session nothing but the login page, and not one request reaches the API; with one, every
read goes out with the visitor's own key."""

from __future__ import annotations

import doctest
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from flask.testing import FlaskClient
from pydantic import SecretStr

from mmlw.api.app import create_app
from mmlw.errors import InvalidInput
from mmlw.frontend import headers, sessions
from mmlw.frontend.app import create_dashboard
from mmlw.frontend.login import LoginLink, session_secret
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine

COOKIE = "mmlw_dashboard"
PAGES = ("/", "/machines/m1", "/machines/m1?range=7d", "/alerts", "/models/m1", "/jobs", "/x")
CLOSED = (  # Dash's own routes, scripts and assets: 401 without a session
    "/_dash-layout",
    "/_dash-dependencies",
    "/_dash-component-suites/dash/dcc/async-graph.js",
    "/_dash-component-suites/plotly/package_data/plotly.min.js",
    "/assets/style.css",
    "/_favicon.ico",
    "/_reload-hash",
)
OVERVIEW_CALLBACK = {
    "output": "overview-body.children",
    "outputs": {"id": "overview-body", "property": "children"},
    "inputs": [{"id": "tick", "property": "n_intervals", "value": 1}],
    "changedPropIds": ["tick.n_intervals"],
    "state": [],
}


@dataclass
class Stack:
    settings: Settings
    api: TestClient
    keys: dict[str, str]
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, key)

    def transport(self) -> httpx.MockTransport:
        """Hands the dashboard's requests to the real API, noting each with its key."""

        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append((request.url.path, request.headers.get("x-api-key")))
            response = self.api.request(
                request.method, str(request.url), content=request.content, headers=request.headers
            )
            headers = {k: v for k, v in response.headers.items() if k != "content-encoding"}
            return httpx.Response(response.status_code, headers=headers, content=response.content)

        return httpx.MockTransport(handle)

    def dashboard(self, **options: Any) -> FlaskClient:
        settings = options.pop("settings", self.settings)
        app = create_dashboard(settings, transport=self.transport(), **options)
        return app.server.test_client()


@pytest.fixture
def stack(
    make_settings: Callable[..., Settings], sqlite_store: Store, registry: MlflowRegistry
) -> Iterator[Stack]:
    sqlite_store.readings.add(SyntheticMachine("m1", seed=1, n_sensors=3).read(5).to_batch())
    keys = {
        scope: sqlite_store.api_keys.create(f"{scope}-key", [scope])[0]
        for scope in ("ingest", "read", "operate")
    }
    settings = make_settings()
    with TestClient(create_app(settings, store=sqlite_store, registry=registry)) as api:
        yield Stack(settings, api, keys)


def log_in(client: FlaskClient, key: str, next_path: str = "/", **environ: Any) -> Any:
    return client.post("/login", data={"key": key, "next": next_path}, **environ)


def overview_callback(client: FlaskClient) -> Any:
    return client.post("/_dash-update-component", json=OVERVIEW_CALLBACK)


def assert_secured(response: Any) -> None:
    headers = response.headers
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "'unsafe-eval'" not in policy
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


def test_without_a_session_only_the_login_page_answers_and_the_api_hears_nothing(
    stack: Stack,
) -> None:
    client = stack.dashboard()
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login"), path
        assert_secured(response)
    assert client.get("/machines/m1?range=7d").headers["Location"] == (
        "/login?next=%2Fmachines%2Fm1%3Frange%3D7d"
    )
    for path in CLOSED:
        response = client.get(path)
        assert response.status_code == 401, path
        assert b"m1" not in response.data
        assert_secured(response)
    callback = overview_callback(client)
    assert callback.status_code == 401
    for path in ("/_dash-update-component", "/machines/m1"):
        assert client.post(path, json={}).status_code == 401
    login = client.get("/login")
    assert login.status_code == 200 and b'<form class="login-form" method="post"' in login.data
    assert_secured(login)
    css = client.get("/assets/login.css")
    assert css.status_code == 200 and b".login-box" in css.data
    assert client.get("/health").get_json() == {"status": "ok"}
    assert stack.requests == []


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("mmlw_not-a-key", b"The API does not accept this key."),
        ("ingest", b"This key lacks the read scope."),
        ("", b"Enter an API key."),
    ],
)
def test_a_refused_key_gets_the_login_page_with_why(stack: Stack, key: str, says: bytes) -> None:
    client = stack.dashboard()
    response = log_in(client, stack.keys.get(key, key), "/jobs")
    assert response.status_code == 401
    assert says in response.data and b'name="next" value="/jobs"' in response.data
    assert client.get_cookie(COOKIE) is None
    assert client.get("/_dash-layout").status_code == 401
    assert len(stack.requests) == (1 if key else 0)  # the one check, and nothing since


def test_the_right_key_opens_the_pages_and_every_read_goes_out_with_it(stack: Stack) -> None:
    client = stack.dashboard()
    response = log_in(client, stack.keys["read"], "/machines/m1?range=7d")
    assert response.status_code == 303
    assert response.headers["Location"] == "/machines/m1?range=7d"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert stack.keys["read"] not in cookie  # the cookie holds a session id, not the key
    page = client.get("/machines/m1")
    assert page.status_code == 200 and b"<title>MMLW</title>" in page.data
    assert_secured(page)
    assert client.get("/_dash-layout").status_code == 200
    assert client.get("/assets/style.css").status_code == 200
    callback = overview_callback(client)
    assert callback.status_code == 200, callback.data
    assert "m1" in json.dumps(callback.get_json())
    assert len(stack.requests) > 1
    assert {key for _, key in stack.requests} == {stack.keys["read"]}


def test_each_visitor_reads_with_their_own_key(stack: Stack) -> None:
    app = create_dashboard(stack.settings, transport=stack.transport())
    reader, operator = app.server.test_client(), app.server.test_client()
    assert log_in(reader, stack.keys["read"]).status_code == 303
    assert log_in(operator, stack.keys["operate"]).status_code == 303
    for client, key in ((reader, "read"), (operator, "operate"), (reader, "read")):
        stack.requests.clear()
        assert overview_callback(client).status_code == 200
        assert {k for _, k in stack.requests} == {stack.keys[key]}


def test_logging_out_ends_the_session_and_its_cookie(stack: Stack) -> None:
    app = create_dashboard(stack.settings, transport=stack.transport())
    client = app.server.test_client()
    log_in(client, stack.keys["read"])
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    response = client.post("/logout")
    assert response.status_code == 303 and response.headers["Location"] == "/login?out"
    assert b"You are logged out." in client.get("/login?out").data
    assert client.get("/_dash-layout").status_code == 401
    replay = app.server.test_client()  # the old cookie, kept by someone: worthless now
    replay.set_cookie(COOKIE, cookie.value)
    stack.requests.clear()
    assert replay.get("/_dash-layout").status_code == 401
    assert overview_callback(replay).status_code == 401
    assert stack.requests == []


def test_login_attempts_are_limited_per_address(stack: Stack) -> None:
    board = stack.settings.dashboard.model_copy(update={"login_attempts_per_minute": 3})
    client = stack.dashboard(settings=stack.settings.model_copy(update={"dashboard": board}))
    for _ in range(3):
        assert log_in(client, "mmlw_guess").status_code == 401
    stack.requests.clear()
    held = log_in(client, stack.keys["read"])  # even the right key waits now
    assert held.status_code == 429 and b"Too many login attempts" in held.data
    assert 0 < int(held.headers["Retry-After"]) <= 60
    assert stack.requests == []
    other = log_in(client, stack.keys["read"], environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 303


def test_a_next_address_never_leaves_the_dashboard(stack: Stack) -> None:
    client = stack.dashboard()
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = log_in(client, stack.keys["read"], target)
        assert response.headers["Location"] == "/", target


def test_a_one_time_link_logs_in_once(stack: Stack) -> None:
    link = LoginLink(key=stack.keys["read"])
    app = create_dashboard(stack.settings, transport=stack.transport(), login_link=link)
    first, second = app.server.test_client(), app.server.test_client()
    response = first.get(link.path)
    assert response.status_code == 303 and response.headers["Location"] == "/"
    assert overview_callback(first).status_code == 200
    assert second.get(link.path).status_code == 401
    assert second.get("/login/once/" + "x" * len(link.token)).status_code == 401
    assert second.get("/_dash-layout").status_code == 401
    without = create_dashboard(stack.settings, transport=stack.transport()).server.test_client()
    assert without.get(link.path).status_code == 401  # a deployment has no link at all


def test_production_needs_a_long_secret(stack: Stack) -> None:
    production = stack.settings.model_copy(update={"environment": "production"})
    with pytest.raises(InvalidInput, match="MMLW_DASHBOARD__SECRET_KEY"):
        session_secret(production)
    short = production.dashboard.model_copy(update={"secret_key": SecretStr("short")})
    with pytest.raises(InvalidInput, match="32 characters"):
        session_secret(production.model_copy(update={"dashboard": short}))
    secret = "s" * 40
    kept = production.dashboard.model_copy(update={"secret_key": SecretStr(secret)})
    assert session_secret(production.model_copy(update={"dashboard": kept})) == secret
    assert session_secret(stack.settings) != session_secret(stack.settings)  # random per start


def test_the_examples_in_the_docstrings_hold() -> None:
    for module in (headers, sessions):
        assert doctest.testmod(module).failed == 0, module.__name__
