"""An httpx transport that hands each request to a FastAPI app under test: the
dashboard's :class:`~mmlw.client.ApiClient` talks to the real app, in process."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

__all__ = ["forwarding"]


def forwarding(api: TestClient, seen: list[str] | None = None) -> httpx.MockTransport:
    """Each request goes to the app under ``api``; ``seen`` (if given) notes
    ``"METHOD /path"`` of each."""

    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(f"{request.method} {request.url.path}")
        response = api.request(
            request.method, str(request.url), content=request.content, headers=request.headers
        )
        headers = {k: v for k, v in response.headers.items() if k != "content-encoding"}
        return httpx.Response(response.status_code, headers=headers, content=response.content)

    return httpx.MockTransport(handle)
