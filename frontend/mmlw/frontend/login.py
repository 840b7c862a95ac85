"""The dashboard's login: nothing but the login page without a session.

A visitor logs in with their own API key (at least the ``read`` scope), checked by one
cheap authenticated read of the API (``GET /api/v1/jobs?limit=1``): the API stays the one
place that knows keys and scopes, revoking a key there locks its holder out here at the
next login, and every page then reads with that key, so the API's scopes apply per
visitor. (A username and password of the dashboard's own would have needed one
server-wide key for every visitor's reads.)

Without a session, page addresses redirect to ``/login?next=<page>``; everything else
(Dash's layout, dependencies, callbacks, scripts, assets) answers 401, and none of it
reaches the API. Only ``/login``, its stylesheet, a one-time link and ``/health`` are
public. Login attempts are limited per client address.
"""

from __future__ import annotations

import hmac
import math
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlencode

import flask
from werkzeug.wrappers.response import Response as WerkzeugResponse

from mmlw.errors import InvalidInput, MMLWError
from mmlw.frontend.api_client import ApiClient, ApiError
from mmlw.frontend.sessions import LoginLimiter, Visitor, VisitorSessions
from mmlw.frontend.visitors import CURRENT_VISITOR
from mmlw.settings import Settings

__all__ = [
    "LOGIN_CSS",
    "LoginLink",
    "LoginRefused",
    "admission",
    "install_login",
    "session_secret",
]

LOGIN_CSS = "/assets/login.css"
LINK_PREFIX = "/login/once/"
PUBLIC_PATHS = frozenset({"/login", "/logout", LOGIN_CSS, "/health"})
SESSION_ID = "sid"
MIN_SECRET_LENGTH = 32

Reply = flask.Response | WerkzeugResponse | tuple[str, int, dict[str, str]]


class LoginRefused(MMLWError):
    """A login the API did not accept; the message is shown on the login page."""


@dataclass
class LoginLink:
    """A link that logs one browser in with ``key`` once (``mmlw demo`` prints it); a
    real deployment never has one."""

    key: str | None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    used: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def path(self) -> str:
        return LINK_PREFIX + self.token

    def redeem(self, token: str) -> bool:
        """True once, for the right token (compared in constant time)."""
        with self._lock:
            if self.used or not hmac.compare_digest(token.encode(), self.token.encode()):
                return False
            self.used = True
            return True


def session_secret(settings: Settings) -> str:
    """The key that signs session cookies: ``dashboard.secret_key``; random per start
    when unset, except in production, where it is required (and long)."""
    secret = settings.dashboard.secret_key
    production = settings.environment == "production"
    if secret is None:
        if production:
            raise InvalidInput(
                "dashboard.secret_key",
                f"set MMLW_DASHBOARD__SECRET_KEY (at least {MIN_SECRET_LENGTH} characters) "
                "in production",
            )
        return secrets.token_urlsafe(32)
    value = secret.get_secret_value()
    if production and len(value) < MIN_SECRET_LENGTH:
        raise InvalidInput(
            "dashboard.secret_key", f"at least {MIN_SECRET_LENGTH} characters in production"
        )
    return value


def admission(
    client_for: Callable[[str | None], ApiClient],
    callbacks_for: Callable[[ApiClient], list[Callable[..., object]]],
) -> Callable[[str | None], Visitor]:
    """Check a key with one cheap read of the API; the visitor it stands for, or
    :class:`LoginRefused` saying why not."""

    def admit(key: str | None) -> Visitor:
        client = client_for(key)
        try:
            client.jobs(limit=1)
        except ApiError as exc:
            client.close()
            raise LoginRefused(_refusal(exc)) from exc
        return Visitor(key=key, client=client, callbacks=list(callbacks_for(client)))

    return admit


def _refusal(exc: ApiError) -> str:
    status = getattr(exc, "status", None)
    if status == 401:
        return "The API does not accept this key."
    if status == 403:
        return "This key lacks the read scope."
    if status is None:
        return "The API did not answer; try again later."
    return f"The API refused the login (HTTP {status})."


def install_login(
    server: flask.Flask,
    settings: Settings,
    admit: Callable[[str | None], Visitor],
    *,
    sessions: VisitorSessions,
    limiter: LoginLimiter,
    link: LoginLink | None = None,
) -> None:
    """Put the login in front of every route of ``server``."""
    board = settings.dashboard
    server.secret_key = session_secret(settings)
    server.config.update(
        SESSION_COOKIE_NAME="mmlw_dashboard",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=board.public_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=int(board.session_hours * 3600),
    )

    @server.before_request
    def gate() -> Reply | None:
        path = flask.request.path
        if path in PUBLIC_PATHS or path.startswith(LINK_PREFIX):
            return None
        visitor = sessions.get(flask.session.get(SESSION_ID))
        if visitor is not None:
            flask.g.setdefault(CURRENT_VISITOR, visitor)
            return None
        if flask.request.method in ("GET", "HEAD") and not path.startswith(("/_", "/assets/")):
            return flask.redirect(_login_url(flask.request.full_path.rstrip("?")))
        refused = flask.jsonify(detail="log in at /login")
        refused.status_code = 401
        refused.headers["WWW-Authenticate"] = "Session"
        return refused

    @server.get("/login")
    def login_page() -> Reply:
        note = "You are logged out." if "out" in flask.request.args else None
        return _page(next_path=_safe_next(flask.request.args.get("next")), note=note)

    @server.post("/login")
    def login() -> Reply:
        next_path = _safe_next(flask.request.form.get("next"))
        wait = limiter.retry_after(flask.request.remote_addr or "unknown")
        if wait is not None:
            seconds = math.ceil(wait)
            error = f"Too many login attempts: try again in {seconds} s."
            return _page(next_path, error=error, status=429, retry_after=seconds)
        key = (flask.request.form.get("key") or "").strip()
        if not key:
            return _page(next_path, error="Enter an API key.", status=401)
        try:
            visitor = admit(key)
        except LoginRefused as exc:
            return _page(next_path, error=str(exc), status=401)
        _start(sessions, visitor)
        return flask.redirect(next_path, code=303)

    @server.get(f"{LINK_PREFIX}<token>")
    def login_once(token: str) -> Reply:
        if limiter.retry_after(flask.request.remote_addr or "unknown") is not None:
            return _page("/", error="Too many login attempts.", status=429)
        if link is None or not link.redeem(token):
            return _page("/", error="This login link is used up or not valid.", status=401)
        try:
            visitor = admit(link.key)
        except LoginRefused as exc:
            link.used = False  # not spent on an API that was not up yet
            return _page("/", error=str(exc), status=401)
        _start(sessions, visitor)
        return flask.redirect("/", code=303)

    @server.post("/logout")
    def logout() -> Reply:
        sessions.close(flask.session.get(SESSION_ID))
        flask.session.clear()
        return flask.redirect("/login?out", code=303)


def _start(sessions: VisitorSessions, visitor: Visitor) -> None:
    """A new session id for every login (a previous one is closed): none is reused."""
    sessions.close(flask.session.get(SESSION_ID))
    flask.session.clear()
    flask.session[SESSION_ID] = sessions.open(visitor)
    flask.session.permanent = True


def _login_url(next_path: str) -> str:
    return "/login?" + urlencode({"next": next_path}) if next_path != "/" else "/login"


def _safe_next(candidate: str | None) -> str:
    """Where to go after logging in: a path of this dashboard, never another site."""
    if not candidate or not candidate.startswith("/") or candidate.startswith("//"):
        return "/"
    if "\\" in candidate or any(ord(c) < 32 for c in candidate):
        return "/"
    return candidate


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MMLW - log in</title>
<link rel="stylesheet" href="{css}">
</head>
<body class="login-body">
<main class="login-box">
<h1 class="login-brand">MMLW</h1>
<form class="login-form" method="post" action="/login">
<label for="key">API key</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="next" value="{next}">
{message}<button type="submit" class="login-button">Log in</button>
</form>
<p class="login-hint">A key with at least the <code>read</code> scope
(<code>mmlw keys create --name you --scope read</code>); acting needs <code>operate</code>.</p>
</main>
</body>
</html>
"""


def _page(
    next_path: str,
    *,
    error: str | None = None,
    note: str | None = None,
    status: int = 200,
    retry_after: int | None = None,
) -> tuple[str, int, dict[str, str]]:
    message = ""
    if error:
        message = f'<p class="login-error" role="alert">{escape(error)}</p>\n'
    elif note:
        message = f'<p class="login-note">{escape(note)}</p>\n'
    html = PAGE.format(css=LOGIN_CSS, next=escape(next_path), message=message)
    headers = {"Content-Type": "text/html; charset=utf-8"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return html, status, headers
