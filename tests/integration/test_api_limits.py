"""Request bodies are limited before they are parsed or the key is checked; reads are bounded."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import anyio
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.types import Message, Receive, Scope, Send

from mmlw.api.app import create_app
from mmlw.api.limits import BodyLimit
from mmlw.messaging.sink import ListSink
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.settings import ApiSettings, Settings
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine

API = "/api/v1"
KEY = "k" * 20
JSON = {"content-type": "application/json"}


def client_for(
    settings: Settings, store: Store, registry: MlflowRegistry, sink: ListSink
) -> TestClient:
    return TestClient(create_app(settings, store=store, registry=registry, publisher=sink))


def wire(n_readings: int) -> bytes:
    return SyntheticMachine("m1", seed=1, n_sensors=3).read(n_readings).to_batch().to_wire()


def test_an_oversized_body_is_refused_before_the_key_and_the_handler(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry
) -> None:
    sink = ListSink()
    settings = make_settings(api=ApiSettings(keys=[SecretStr(KEY)], max_body_mb=0.01))  # ~10 KiB
    big, small = wire(400), wire(5)
    assert len(big) > 0.01 * 1024 * 1024 > len(small)
    url = f"{API}/machines/m1/readings"
    with client_for(settings, store, registry, sink) as client:
        anonymous = client.post(url, content=big, headers=JSON)
        assert anonymous.status_code == 413, anonymous.text
        assert "MMLW_API__MAX_BODY_MB" in anonymous.json()["detail"]
        keyed = client.post(url, content=big, headers={**JSON, "X-API-Key": KEY})
        assert keyed.status_code == 413
        assert sink.batches == []  # the handler never ran
        assert client.post(url, content=small, headers=JSON).status_code == 401
        ok = client.post(url, content=small, headers={**JSON, "X-API-Key": KEY})
        assert ok.status_code == 202, ok.text
        assert len(sink.batches) == 1


def test_an_oversized_chunked_body_is_cut_off_with_413(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry
) -> None:
    sink = ListSink()
    settings = make_settings(api=ApiSettings(keys=[SecretStr(KEY)], max_body_mb=0.01))
    big = wire(400)

    def chunks(body: bytes, size: int = 1024) -> Iterator[bytes]:  # no Content-Length
        for i in range(0, len(body), size):
            yield body[i : i + size]

    url = f"{API}/machines/m1/readings"
    with client_for(settings, store, registry, sink) as client:
        response = client.post(url, content=chunks(big), headers={**JSON, "X-API-Key": KEY})
        assert response.status_code == 413, response.text
        assert "MMLW_API__MAX_BODY_MB" in response.json()["detail"]
        assert sink.batches == []
        small = client.post(url, content=chunks(wire(5)), headers={**JSON, "X-API-Key": KEY})
        assert small.status_code == 202, small.text


def test_the_limit_stops_reading_a_stream_at_the_limit(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(api=ApiSettings(max_body_mb=1 / 1024))  # 1 KiB
    pulled: list[int] = []
    sent: list[Message] = []
    handled: list[int] = []

    async def receive() -> Message:  # an endless chunked body, 100 bytes a message
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 100, "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    async def reader(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        handled.append(1)

    app = SimpleNamespace(state=SimpleNamespace(mmlw=SimpleNamespace(settings=settings)))
    scope: Scope = {"type": "http", "method": "POST", "path": f"{API}/x", "headers": [], "app": app}
    # in a thread of its own: an event loop another test left running in this thread
    # (Playwright's sync API) must not stop this one
    runner = threading.Thread(target=anyio.run, args=(BodyLimit(reader), scope, receive, send))
    runner.start()
    runner.join(timeout=30)
    assert len(pulled) == 11  # 1100 bytes > 1024: nothing after that is read
    assert handled == []
    assert sent[0]["status"] == 413
    assert b"MMLW_API__MAX_BODY_MB" in sent[1]["body"]


def test_a_body_without_a_valid_key_is_never_parsed(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry
) -> None:
    settings = make_settings(api=ApiSettings(keys=[SecretStr(KEY)]))
    with client_for(settings, store, registry, ListSink()) as client:
        # not JSON: a route would answer 400/422 had it parsed the body before the key
        garbage = client.post(f"{API}/machines/m1/readings", content=b"{nope", headers=JSON)
        assert garbage.status_code == 401
        assert garbage.headers["www-authenticate"] == "API-Key"


def test_imports_keep_their_own_larger_limit(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry
) -> None:
    rows = "\n".join(f"2026-03-09 10:{i // 60:02d}:{i % 60:02d},{i * 0.5}" for i in range(1200))
    body = f"datetime,a\n{rows}\n".encode()
    api = ApiSettings(max_body_mb=0.01, max_import_mb=1)
    assert 0.01 * 1024 * 1024 < len(body) < 1024 * 1024
    with client_for(make_settings(api=api), store, registry, ListSink()) as client:
        url = f"{API}/machines/pump-1/imports"
        csv = {"content-type": "text/csv"}
        ok = client.post(url, content=body, headers=csv, params={"score": False})
        assert ok.status_code == 200, ok.text
        assert ok.json()["rows"] == 1200
        huge = client.post(url, content=body * 100, headers=csv)
        assert huge.status_code == 413
        assert "MMLW_API__MAX_IMPORT_MB" in huge.json()["detail"]


def test_limit_over_the_configured_maximum_is_a_422_naming_limit(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry
) -> None:
    store.readings.add(SyntheticMachine("m1", seed=1, n_sensors=3).read(20).to_batch())
    settings = make_settings(api=ApiSettings(max_rows=10))
    with client_for(settings, store, registry, ListSink()) as client:
        for path in (
            "/machines/m1/readings",
            "/machines/m1/scores",
            "/alerts",
            "/deliveries",
            "/dead-letters",
            "/jobs",
        ):
            response = client.get(f"{API}{path}", params={"limit": 11})
            assert response.status_code == 422, (path, response.status_code)
            (error,) = response.json()["detail"]
            assert error["loc"] == ["query", "limit"], path
            assert "10" in error["msg"]
        readings = client.get(f"{API}/machines/m1/readings", params={"limit": 10})
        assert readings.status_code == 200
        assert len(readings.json()["timestamps"]) == 10
