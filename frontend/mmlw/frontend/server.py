"""Serving the dashboard: uvicorn over the Dash (Flask, WSGI) app, as ``mmlw api`` serves
the API. ``serving`` runs any app in a daemon thread (demo and tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import uvicorn

from mmlw.settings import Settings

__all__ = ["run_dashboard", "serving"]

Interface = Literal["auto", "asgi3", "asgi2", "wsgi"]


def _config(app: Any, host: str, port: int, interface: Interface, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, interface=interface, log_level=log_level)


def run_dashboard(settings: Settings, *, mlflow_url: str | None = None) -> None:
    """Serve the dashboard in the foreground until interrupted (``mmlw dashboard``)."""
    from mmlw.frontend.app import create_dashboard

    app = create_dashboard(settings, mlflow_url=mlflow_url)
    config = _config(app.server, settings.dashboard.host, settings.dashboard.port, "wsgi", "info")
    uvicorn.Server(config).run()


@contextmanager
def serving(
    app: Any,
    host: str,
    port: int,
    *,
    interface: Interface = "auto",
    name: str = "server",
    ready_timeout_s: float = 30.0,
) -> Iterator[str]:
    """Serve ``app`` on ``host:port`` in a daemon thread; yields its base URL once it
    listens, stops it on exit."""
    server = uvicorn.Server(_config(app, host, port, interface, "warning"))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + ready_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"{name} did not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
