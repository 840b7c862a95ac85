"""The MLflow server requires a login, and MMLW logs in to it: against a real
``mlflow server --app-name basic-auth`` started through the compose image's entrypoint, a
request without credentials is refused, MMLW's account registers, moves aliases and loads,
and wrong credentials fail with one clear line."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from mmlw.errors import ServiceUnavailable
from mmlw.registry.artifacts import logged_model_location
from mmlw.registry.base import CHAMPION
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.settings import Settings
from tests.conftest import MLFLOW_AUTH_ENTRYPOINT, TEST_SIGNING_KEY, MlflowAuthServer
from tests.integration.test_untrusted_models import COLUMNS, MACHINE, _legit

# its module/session fixture is started once, on one xdist worker (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("mlflow-auth-server")

LOGIN_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@pytest.fixture(autouse=True)
def _restore_mlflow_login(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The registry puts its login in ``os.environ`` (process-wide, as MLflow reads it):
    start each test without one and take back whatever a test's registry set."""
    for name in LOGIN_VARIABLES:
        monkeypatch.setenv(name, "")  # recorded, so teardown restores the original state
        monkeypatch.delenv(name)
    yield


def _status(uri: str, path: str, login: tuple[str, str] | None = None, body: object = None) -> int:
    headers = {"Content-Type": "application/json"}
    if login is not None:
        token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{uri}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _settings_registry(
    make_settings: Callable[..., Settings], server: MlflowAuthServer, password: str
) -> MlflowRegistry:
    settings = make_settings(
        mlflow_tracking_uri=server.uri,
        mlflow_experiment=f"mmlw-{uuid.uuid4().hex[:8]}",
        mlflow_username=server.username,
        mlflow_password=SecretStr(password),
    )
    return MlflowRegistry.from_settings(settings)


@pytest.mark.parametrize(
    "path",
    [
        "/api/2.0/mlflow/experiments/search?max_results=1",
        "/api/2.0/mlflow/registered-models/search",
        f"/api/2.0/mlflow/registered-models/alias?name=mmlw-{MACHINE}&alias={CHAMPION}",
        "/api/2.0/mlflow-artifacts/artifacts",
        "/ajax-api/2.0/mlflow/experiments/search?max_results=1",
        "/",
    ],
)
def test_anonymous_requests_are_refused(mlflow_auth_server: MlflowAuthServer, path: str) -> None:
    assert _status(mlflow_auth_server.uri, path) == 401
    wrong = (mlflow_auth_server.username, "not-the-password")
    assert _status(mlflow_auth_server.uri, path, wrong) == 401


def test_health_answers_without_a_login(mlflow_auth_server: MlflowAuthServer) -> None:
    """What compose's healthcheck probes."""
    assert _status(mlflow_auth_server.uri, "/health") == 200


def test_the_service_account_registers_moves_an_alias_and_loads(
    mlflow_auth_server: MlflowAuthServer, make_settings: Callable[..., Settings]
) -> None:
    registry = _settings_registry(make_settings, mlflow_auth_server, mlflow_auth_server.password)
    first = _legit(registry)
    second = _legit(registry)  # registers v2 and moves champion to it
    assert (first, second) == (1, 2)
    assert registry.alias_version(MACHINE, CHAMPION) == second
    loaded = registry.load(MACHINE, second)
    assert loaded.columns == COLUMNS and loaded.detector_name == "pca"
    found = registry.client.get_model_version(registry.model_name(MACHINE), str(second))
    assert logged_model_location(registry.client, found.source) is not None  # may read it directly
    assert [v.aliases for v in registry.versions(MACHINE)] == [[], [CHAMPION]]
    registry.delete_alias(MACHINE, CHAMPION)  # needs MANAGE, not only EDIT
    assert registry.alias_version(MACHINE, CHAMPION) is None


def test_the_service_account_may_use_what_the_admin_created(
    mlflow_auth_server: MlflowAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Experiments and models from before the login (or made by an operator) are the
    service account's too: it holds MANAGE on every experiment and registered model."""
    from mlflow import MlflowClient

    server = mlflow_auth_server
    prefix = f"a{uuid.uuid4().hex[:8]}-"
    experiment = f"admin-made-{prefix}"
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", server.admin_username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", server.admin_password)
    admin = MlflowClient(server.uri, registry_uri=server.uri)
    experiment_id = admin.create_experiment(experiment)
    admin.create_registered_model(f"{prefix}{MACHINE}")

    registry = MlflowRegistry(
        server.uri,
        signing_key=TEST_SIGNING_KEY.encode(),
        experiment=experiment,
        model_prefix=prefix,
        username=server.username,
        password=server.password,
    )
    assert registry.experiment_id() == experiment_id
    version = _legit(registry)
    assert registry.load(MACHINE, version).columns == COLUMNS

    # a user nobody granted anything sees nothing (default permission NO_PERMISSIONS)
    outsider = (f"outsider-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex)
    admin_login = (server.admin_username, server.admin_password)
    created = _status(
        server.uri,
        "/api/2.0/mlflow/users/create",
        admin_login,
        {"username": outsider[0], "password": outsider[1]},
    )
    assert created == 200
    path = f"/api/2.0/mlflow/experiments/get-by-name?experiment_name={experiment}"
    assert _status(server.uri, path, outsider) == 403
    assert _status(server.uri, path, (server.username, server.password)) == 200


def test_wrong_credentials_fail_with_one_clear_line(
    mlflow_auth_server: MlflowAuthServer, make_settings: Callable[..., Settings]
) -> None:
    from mlflow.exceptions import MlflowException

    registry = _settings_registry(make_settings, mlflow_auth_server, "not-the-password-0123")
    with pytest.raises(MlflowException) as raised:
        registry.experiment_id()
    with pytest.raises(ServiceUnavailable) as unavailable:
        registry.alias_version(MACHINE, CHAMPION)  # what the API answers 503 with
    for error in (raised.value, unavailable.value):
        message = str(error)
        assert "401" in message and "not authenticated" in message, message
        assert "\n" not in message and "not-the-password" not in message


def test_production_refuses_an_mlflow_server_without_a_login(tmp_path: Path) -> None:
    production = {
        "environment": "production",
        "data_dir": tmp_path,
        "mlflow_tracking_uri": "http://mlflow:5000",
        "models": {"signing_key": TEST_SIGNING_KEY},
    }
    login = {"mlflow_username": "mmlw", "mlflow_password": "a-real-password-123"}
    with pytest.raises(ValidationError, match="mlflow_password"):
        Settings.model_validate(production)
    with pytest.raises(ValidationError, match="mlflow_password"):
        Settings.model_validate({**production, **login, "mlflow_password": "admin"})
    with pytest.raises(ValidationError, match="set both or neither"):
        Settings.model_validate({**production, "mlflow_username": "mmlw"})
    Settings.model_validate({**production, **login})
    # the embedded store needs no login
    Settings.model_validate({**production, "mlflow_tracking_uri": None})


def test_a_cached_login_does_not_let_a_wrong_password_in(
    mlflow_auth_server: MlflowAuthServer,
) -> None:
    """The entrypoint turns on MLflow's cache of successful logins (so a request does not
    pay a password hash each); the cache is keyed by the password, so once the right one
    is cached a wrong one is still refused."""
    server = mlflow_auth_server
    ini = (Path(server.config_dir) / "basic_auth.ini").read_text()
    assert "auth_cache_ttl_seconds = 60" in ini
    path = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert _status(server.uri, path, (server.username, server.password)) == 200
    assert _status(server.uri, path, (server.username, server.password)) == 200  # cached
    assert _status(server.uri, path, (server.username, server.password + "x")) == 401
    assert _status(server.uri, path, (server.admin_username, server.password)) == 401


@pytest.mark.parametrize("ttl", ["-1", "sixty", "86401"])
def test_a_bad_login_cache_ttl_stops_the_entrypoint_with_one_line(tmp_path: Path, ttl: str) -> None:
    env = {
        **os.environ,
        "MLFLOW_AUTH_ADMIN_PASSWORD": "an-admin-password-123",
        "MLFLOW_AUTH_CONFIG_DIR": str(tmp_path),
        "MLFLOW_AUTH_CACHE_TTL_SECONDS": ttl,
    }
    done = subprocess.run(
        [sys.executable, str(MLFLOW_AUTH_ENTRYPOINT), "true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "MLFLOW_AUTH_CACHE_TTL_SECONDS" in done.stderr
