"""The deployed shape: every piece its own process on RabbitMQ and PostgreSQL.

`mmlw db upgrade`, `mmlw ingest`, `mmlw worker` (Celery prefork pool), `mmlw api` and
`mmlw simulate` run as subprocesses, as docker compose runs them; the test drives them
through the HTTP API only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mmlw.messaging.topology import Topology
from mmlw.ports import free_port
from tests.conftest import TEST_SIGNING_KEY, _create_pg_database, _drop_pg_database
from tests.integration.pipeline import delete_topology
from tests.support.wait import wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]


def mmlw(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmlw.cli", *args]


def process_env(
    tmp_path: Path,
    rabbitmq_url: str,
    db_url: str,
    tracking_uri: str,
    namespace: str,
    port: int,
    **extra: str,
) -> dict[str, str]:
    """The environment of every ``mmlw`` process of one test deployment (no MMLW_* of the
    caller leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMLW_")}
    return env | {
        "MMLW_BROKER__URL": rabbitmq_url,
        "MMLW_BROKER__NAMESPACE": namespace,
        "MMLW_DATABASE_URL": db_url,
        "MMLW_MLFLOW_TRACKING_URI": tracking_uri,
        "MMLW_MODELS__REGISTERED_MODEL_PREFIX": f"{namespace}-",
        "MMLW_MODELS__SIGNING_KEY": TEST_SIGNING_KEY,
        "MMLW_DATA_DIR": str(tmp_path / "data"),
        "MMLW_API__PORT": str(port),
        **extra,
    }


@pytest.fixture
def deployment(
    tmp_path: Path, rabbitmq_url: str, postgres_admin_url: str, tracking_uri: str
) -> Iterator[dict[str, Any]]:
    namespace = f"p{uuid.uuid4().hex[:10]}"
    db_name, db_url = _create_pg_database(postgres_admin_url)
    port = free_port()
    env = process_env(
        tmp_path, rabbitmq_url, db_url, tracking_uri, namespace, port,
        MMLW_MODELS__ALIAS_CACHE_TTL_S="1",
    )  # fmt: skip
    subprocess.run(mmlw("db", "upgrade"), env=env, check=True, capture_output=True, timeout=120)
    commands = {
        "ingest": mmlw("ingest"),
        "worker": mmlw("worker", "--pool", "prefork", "--concurrency", "2"),
        "scorer": mmlw("scorer"),
        "api": mmlw("api"),
    }
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in commands}
    processes = {
        name: subprocess.Popen(cmd, env=env, stdout=logs[name], stderr=subprocess.STDOUT)
        for name, cmd in commands.items()
    }
    try:
        yield {"env": env, "base": f"http://127.0.0.1:{port}", "processes": processes}
    finally:
        terminate_all(processes.values())
        for handle in logs.values():
            handle.close()
        delete_topology(rabbitmq_url, Topology(namespace))
        _drop_pg_database(postgres_admin_url, db_name)


def terminate_all(processes: Iterable[subprocess.Popen[Any]]) -> None:
    """SIGTERM to each, then wait up to 30 s for each before SIGKILL."""
    processes = list(processes)
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def poll(what: str, check, timeout_s: float = 90.0):  # type: ignore[no-untyped-def]
    """:func:`tests.support.wait.wait_for` for processes: every 0.5 s, HTTP errors of a
    process not (yet) answering count as not there yet."""
    return wait_for(check, timeout_s, what, interval_s=0.5, ignore=(httpx.HTTPError,))


def test_separate_processes_ingest_train_and_score(deployment: dict[str, Any]) -> None:
    base, env = deployment["base"], deployment["env"]
    api = f"{base}/api/v1"
    client = httpx.Client(timeout=10)
    poll("the API", lambda: client.get(f"{base}/health").status_code == 200)
    simulate = mmlw(
        "simulate", "--machines", "1", "--max-readings", "400", "--speedup", "0",
        "--batch-size", "50", "--warmup", "400",
    )  # fmt: skip
    subprocess.run(simulate, env=env, check=True, capture_output=True, timeout=120)

    def machine() -> dict[str, Any] | None:
        rows = client.get(f"{api}/machines").json()
        return rows[0] if rows and rows[0]["n_readings"] == 400 else None

    row = poll("400 readings stored", machine)
    assert row["id"] == "machine-1"
    job = client.post(f"{api}/machines/machine-1/train", json={"detector": "pca"}).json()
    done = poll(
        "the train job",
        lambda: (
            (j := client.get(f"{api}/jobs/{job['id']}").json())["state"] in ("succeeded", "failed")
            and j
        ),
    )
    assert done["state"] == "succeeded", done["error"]
    subprocess.run(simulate, env=env, check=True, capture_output=True, timeout=120)
    scored = poll(
        "800 readings scored",
        lambda: (m := client.get(f"{api}/machines/machine-1").json())["n_scored"] == 800 and m,
    )
    assert scored["champion_version"] == 1
    scores = client.get(f"{api}/machines/machine-1/scores", params={"limit": 1000}).json()
    assert len(scores["scores"]) == 800
    assert set(scores["model_versions"]) == {1}
    for name, process in deployment["processes"].items():
        assert process.poll() is None, f"{name} exited"
