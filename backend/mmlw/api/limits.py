"""Pure ASGI middleware that runs before any route reads a body.

``BodyLimit`` (outermost) answers 413 when Content-Length is over the limit, and counts
the bytes of a body as they stream (chunked or not), failing with 413 as soon as they
pass it, without reading the rest. ``ApiKeyGate`` then authenticates the X-API-Key
header (401) before the router parses anything; the route's dependency still checks the
scope (403), which needs the matched route.

Authenticating in middleware rather than relying on routes to read bodies late is the
robust choice: FastAPI parses body parameters before it runs dependencies, so every new
route with a body would otherwise parse unauthenticated input again.
"""

from __future__ import annotations

import re

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mmlw.api.deps import (
    CALLER_SCOPE_KEY,
    UNAUTHORIZED_DETAIL,
    UNAUTHORIZED_HEADERS,
    AppState,
    authenticate,
)
from mmlw.settings import ApiSettings

__all__ = ["ApiKeyGate", "BodyLimit", "BodyTooLarge"]

_MIB = 1024 * 1024
_IMPORT_PATH = re.compile(r"^/api/v1/machines/[^/]+/imports/?$")


class BodyTooLarge(HTTPException):
    def __init__(self, limit_mb: float, setting: str) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"body: larger than {limit_mb:g} MiB ({setting})",
        )


def _state(scope: Scope) -> AppState | None:
    app = scope.get("app")
    return getattr(getattr(app, "state", None), "mmlw", None)


def body_limit(api: ApiSettings, method: str, path: str) -> tuple[float, str]:
    """The body limit (MiB) of a request and the setting it comes from."""
    if method == "POST" and _IMPORT_PATH.match(path):
        return api.max_import_mb, "MMLW_API__MAX_IMPORT_MB"
    return api.max_body_mb, "MMLW_API__MAX_BODY_MB"


class BodyLimit:
    """413 for a body over ``MMLW_API__MAX_BODY_MB`` (imports: ``MAX_IMPORT_MB``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = _state(scope)
        if scope["type"] != "http" or state is None:
            await self.app(scope, receive, send)
            return
        limit_mb, setting = body_limit(state.settings.api, scope["method"], scope["path"])
        limit = int(limit_mb * _MIB)
        too_large = BodyTooLarge(limit_mb, setting)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await _send_error(too_large, scope, receive, send)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            if received > limit:
                raise too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _send_error(too_large, scope, receive, send)


class ApiKeyGate:
    """401 for a request under /api/v1 without a valid key, before any body is read.

    GETs pass when ``MMLW_API__PUBLIC_READ`` is set; scopes are the route's business.
    """

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = _state(scope)
        if (
            scope["type"] != "http"
            or state is None
            or not (scope["path"] == self.prefix or scope["path"].startswith(self.prefix + "/"))
            or (scope["method"] in ("GET", "HEAD") and state.settings.api.public_read)
        ):
            await self.app(scope, receive, send)
            return
        key = Headers(scope=scope).get("x-api-key")
        caller = await run_in_threadpool(authenticate, state.settings, state.store, key)
        if caller is None:
            error = HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=UNAUTHORIZED_DETAIL,
                headers=UNAUTHORIZED_HEADERS,
            )
            await _send_error(error, scope, receive, send)
            return
        scope[CALLER_SCOPE_KEY] = caller
        await self.app(scope, receive, send)


async def _send_error(error: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
    """The error, and the connection closed after it: the body it refuses is left unread,
    and a server that kept the connection would have to read and discard all of it."""
    headers = {**(error.headers or {}), "Connection": "close"}
    response = JSONResponse(
        {"detail": error.detail}, status_code=error.status_code, headers=headers
    )
    await response(scope, receive, send)
