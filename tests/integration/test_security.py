"""API keys with scopes (hashed at rest), the open/closed modes, CORS, and the CLI."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import ValidationError

from mmlw.api.app import create_app
from mmlw.cli import main
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.settings import ApiSettings, Settings
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine

API = "/api/v1"


def client_for(settings: Settings, store: Store, registry: MlflowRegistry) -> TestClient:
    return TestClient(create_app(settings, store=store, registry=registry))


@pytest.fixture
def keys(store: Store) -> dict[str, str]:
    store.readings.add(SyntheticMachine("m1", seed=1, n_sensors=3).read(5).to_batch())
    return {scope: store.api_keys.create(f"{scope}-key", [scope])[0] for scope in
            ("ingest", "read", "operate", "admin")}  # fmt: skip


@pytest.fixture
def client(
    make_settings: Callable[..., Settings],
    store: Store,
    registry: MlflowRegistry,
    keys: dict[str, str],
) -> Iterator[TestClient]:
    with client_for(make_settings(), store, registry) as running:
        yield running


def call(client: TestClient, key: str | None, method: str, path: str, body: object = None) -> int:
    headers = {"X-API-Key": key} if key else {}
    return client.request(method, f"{API}{path}", json=body, headers=headers).status_code


def test_every_api_route_refuses_a_request_without_a_key(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry
) -> None:
    settings = make_settings(api=ApiSettings(keys=["k" * 20]))
    with client_for(settings, store, registry) as client:
        paths = client.get("/openapi.json").json()["paths"]
        checked = 0
        for path, methods in paths.items():
            if not path.startswith(API):
                continue
            concrete = re.sub(r"\{[^}]+\}", "1", path)
            for method in methods:
                response = client.request(method.upper(), concrete, json={})
                assert response.status_code == 401, (method, path, response.status_code)
                checked += 1
    assert checked > 30


def test_scopes_decide_what_a_key_may_do(client: TestClient, keys: dict[str, str]) -> None:
    batch = SyntheticMachine("m1", seed=2, n_sensors=3).read(3).to_batch()
    matrix = [
        # method, path, body, expected status for keys: ingest, read, operate, admin
        ("GET", "/machines", None, (403, 200, 200, 200)),
        ("GET", "/alerts", None, (403, 200, 200, 200)),
        ("POST", "/alerts/99/resolve", {"by": "x"}, (403, 403, 404, 404)),
        ("POST", "/dead-letters/purge", {"all": True}, (403, 403, 403, 200)),
    ]
    for method, path, body, expected in matrix:
        got = tuple(
            call(client, keys[s], method, path, body)
            for s in ("ingest", "read", "operate", "admin")
        )
        assert got == expected, (method, path, got)
    headers = {"content-type": "application/json"}
    posted = {
        scope: client.post(
            f"{API}/machines/m1/readings",
            content=batch.to_wire(),
            headers={**headers, "X-API-Key": key},
        ).status_code
        for scope, key in keys.items()
    }
    assert posted == {"ingest": 202, "read": 403, "operate": 403, "admin": 202}
    denied = client.get(f"{API}/machines", headers={"X-API-Key": keys["ingest"]}).json()
    assert denied["detail"] == "X-API-Key: key 'ingest-key' lacks scope 'read'"


def test_missing_wrong_and_revoked_keys_are_refused(
    client: TestClient, store: Store, keys: dict[str, str]
) -> None:
    assert call(client, None, "GET", "/machines") == 401
    assert call(client, "mmlw_not-a-key", "GET", "/machines") == 401
    (read_key,) = [k for k in store.api_keys.list() if k.name == "read-key"]
    store.api_keys.revoke(read_key.id)
    assert call(client, keys["read"], "GET", "/machines") == 401
    assert client.get("/health").status_code == 200  # health needs no key


def test_keys_are_stored_only_as_digests(store: Store, keys: dict[str, str]) -> None:
    with store.database.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT prefix, digest, scopes FROM api_keys")).all()
    dumped = repr(rows)
    assert all(key not in dumped for key in keys.values())
    assert {len(r.digest) for r in rows} == {64}
    listed = store.api_keys.list()
    assert {k.name: k.last_used_at for k in listed}["admin-key"] is None


def test_open_in_development_closed_in_production_and_public_read(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry
) -> None:
    with client_for(make_settings(), store, registry) as open_client:
        assert call(open_client, None, "GET", "/machines") == 200  # no keys anywhere
    production = make_settings(environment="production")
    with client_for(production, store, registry) as closed:
        assert call(closed, None, "GET", "/machines") == 401
    public = make_settings(api=ApiSettings(public_read=True, keys=["k" * 20]))
    with client_for(public, store, registry) as reader:
        assert call(reader, None, "GET", "/machines") == 200
        assert call(reader, None, "POST", "/alerts/1/resolve", {"by": "x"}) == 401


def test_cors_is_closed_unless_origins_are_named(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry
) -> None:
    preflight = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "GET",
    }
    with client_for(make_settings(), store, registry) as closed:
        response = closed.options(f"{API}/machines", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    allowed = make_settings(api=ApiSettings(cors_origins=["https://ops.example"]))
    with client_for(allowed, store, registry) as opened:
        ok = opened.options(
            f"{API}/machines", headers={**preflight, "Origin": "https://ops.example"}
        )
        assert ok.headers["access-control-allow-origin"] == "https://ops.example"
        evil = opened.options(f"{API}/machines", headers=preflight)
        assert "access-control-allow-origin" not in evil.headers


def test_production_refuses_default_passwords_and_short_keys() -> None:
    for bad in (
        {"broker": {"url": "amqp://guest:guest@rabbit:5672//"}},
        {"database_url": "postgresql+psycopg://mmlw:postgres@db/mmlw"},
        {"api": {"keys": ["short"]}},
    ):
        with pytest.raises(ValidationError, match="refused in production"):
            Settings(environment="production", **bad)  # type: ignore[arg-type]
    Settings(environment="development", broker={"url": "amqp://guest:guest@h//"})  # type: ignore[arg-type]


def test_cli_creates_lists_and_revokes_keys(tmp_path, store: Store) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    url = store.database.engine.url.render_as_string(hide_password=False)
    env = {"MMLW_DATABASE_URL": url, "MMLW_DATA_DIR": str(tmp_path)}
    created = runner.invoke(
        main, ["keys", "create", "--name", "line-3", "--scope", "ingest"], env=env
    )
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("mmlw_") and store.api_keys.verify(key) is not None
    listed = runner.invoke(main, ["keys", "list"], env=env).output
    assert "line-3" in listed and key not in listed and key[:12] in listed
    key_id = listed.split()[0]
    assert "revoked" in runner.invoke(main, ["keys", "revoke", key_id], env=env).output
    assert store.api_keys.verify(key) is None
    bad = runner.invoke(main, ["keys", "create", "--name", "x", "--scope", "root"], env=env)
    assert bad.exit_code == 2 and "root" in bad.output
    assert datetime.now(UTC)  # the store is still usable
