"""A live system for browser tests and benchmarks: the in-process pipeline (ingest consumer
+ Celery worker on ``memory://``, SQLite store, the session's MLflow store), the HTTP API
and the dashboard, each served by uvicorn on a loopback port. A browser logs in to the
dashboard with :func:`log_in` (the read key) before it sees any page."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from mmlw.api.app import create_app
from mmlw.frontend.app import create_dashboard
from mmlw.frontend.server import serving
from mmlw.ports import free_port
from mmlw.schemas.readings import ReadingsBatch
from mmlw.settings import BrokerSettings, Settings
from mmlw.workers.simulator import SyntheticMachine
from tests.integration.pipeline import Pipeline, running_pipeline

READ_KEY = "reader-key"
OPERATOR_KEY = "operator-key"
REFRESH_MS = 1_000


@dataclass
class LiveSystem:
    settings: Settings
    pipeline: Pipeline
    api_url: str
    dashboard_url: str
    api: httpx.Client  # with the operator's key

    def url(self, path: str) -> str:
        return self.dashboard_url + path


def system_settings(data_dir: Path, tracking_uri: str) -> Settings:
    """Settings of one live system: own data dir, namespace, model names and API keys."""
    namespace = f"t{uuid.uuid4().hex[:10]}"
    settings = Settings(
        data_dir=data_dir,
        mlflow_tracking_uri=tracking_uri,
        broker=BrokerSettings(namespace=namespace),
        environment="test",
    )
    settings = settings.model_copy(
        update={
            "models": settings.models.model_copy(
                update={"registered_model_prefix": f"{namespace}-", "alias_cache_ttl_s": 0.5}
            ),
            "api": settings.api.model_copy(
                update={"keys": [SecretStr(READ_KEY), SecretStr(OPERATOR_KEY)]}
            ),
            # every test logs in once, from one address (the limit has its own test)
            "dashboard": settings.dashboard.model_copy(update={"login_attempts_per_minute": 600}),
        }
    )
    settings.ensure_data_dir()
    (settings.data_dir / "mlartifacts").mkdir(exist_ok=True)
    return settings


@contextmanager
def live_system(settings: Settings) -> Iterator[LiveSystem]:
    with running_pipeline(settings) as pipeline:
        api_app = create_app(
            settings,
            store=pipeline.store,
            registry=pipeline.context.registry,
            dispatcher=pipeline.context.dispatcher,
        )
        with serving(api_app, "127.0.0.1", free_port(), name="api") as api_url:
            dashboard_port = free_port()
            dashboard = settings.dashboard.model_copy(
                update={
                    "api_url": api_url,
                    "port": dashboard_port,
                    "public_url": f"http://127.0.0.1:{dashboard_port}",
                }
            )
            app = create_dashboard(
                settings.model_copy(update={"dashboard": dashboard}), refresh_ms=REFRESH_MS
            )
            with (
                serving(
                    app.server, "127.0.0.1", dashboard_port, interface="wsgi", name="dashboard"
                ) as dashboard_url,
                httpx.Client(
                    base_url=f"{api_url}/api/v1",
                    headers={"X-API-Key": OPERATOR_KEY},
                    timeout=30,
                ) as api,
            ):
                yield LiveSystem(settings, pipeline, api_url, dashboard_url, api)


def log_in(page: Any, system: LiveSystem, key: str = READ_KEY) -> None:
    """Log ``page``'s browser context in to the dashboard through its login form."""
    page.goto(system.url("/login"))
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(system.url("/"))


def publish(system: LiveSystem, machine: SyntheticMachine, n: int, size: int = 100) -> None:
    """``n`` readings of ``machine`` through the API, in batches of ``size``."""
    sent = 0
    while sent < n:
        frame = machine.read(min(size, n - sent))
        post(system, frame.to_batch())
        sent += len(frame)


def post(system: LiveSystem, batch: ReadingsBatch) -> None:
    response = system.api.post(
        f"/machines/{batch.machine_id}/readings",
        content=batch.to_wire(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 202, response.text


def machine_counts(system: LiveSystem, machine_id: str) -> tuple[int, int]:
    """(readings, scored) of a machine; (0, 0) before its first reading is stored."""
    response = system.api.get(f"/machines/{machine_id}")
    if response.status_code == 404:
        return 0, 0
    body = response.json()
    return body["n_readings"], body["n_scored"]
