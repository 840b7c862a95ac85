"""Processes that open a fresh SQLite MLflow store at the same moment (the children of
``mmlw worker --concurrency N``) create its schema once between them: none fails or logs
a traceback, and every one of them can use the registry."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from mmlw.registry.schema_lock import sqlite_path
from tests.conftest import TEST_SIGNING_KEY

PROCESSES = 3

CHILD = """
import sys, time
from pathlib import Path

uri, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
from mmlw.registry.mlflow_registry import MlflowRegistry, import_library

import_library()  # the slow part first, so that all of them open the store together
registry = MlflowRegistry(uri, signing_key=sys.argv[4].encode(), artifact_root=ready.parent)
ready.touch()
while not go.exists():
    time.sleep(0.005)
experiment = registry.experiment_id()
registry.client.search_registered_models()
print("ok", experiment)
"""


def test_processes_opening_a_fresh_sqlite_store_at_once_create_its_schema_once(
    tmp_path: Path,
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    go = tmp_path / "go"
    children = []
    for i in range(PROCESSES):
        ready = tmp_path / f"ready-{i}"
        args = [sys.executable, "-c", CHILD, uri, str(ready), str(go), TEST_SIGNING_KEY]
        children.append(
            (ready, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        )
    try:
        deadline = time.monotonic() + 180
        while not all(ready.exists() for ready, _ in children):
            assert time.monotonic() < deadline, "the children did not get ready"
            assert all(p.poll() is None for _, p in children), "a child died early"
            time.sleep(0.02)
        go.touch()
        results = [p.communicate(timeout=180) for _, p in children]
    finally:
        for _, process in children:
            if process.poll() is None:
                process.kill()
    experiments, logs = set(), ""
    for (_, process), (out, err) in zip(children, results, strict=True):
        stderr = err.decode(errors="replace")
        logs += stderr
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr and "already exists" not in stderr, stderr
        status, experiment = out.decode().split()
        assert status == "ok"
        experiments.add(experiment)
    assert len(experiments) == 1  # one experiment, found by all
    assert logs.count("Creating initial MLflow database tables") <= 1  # never made twice


def test_only_sqlite_uris_are_locked() -> None:
    assert sqlite_path("sqlite:////var/lib/mlflow.db?timeout=5") == Path("/var/lib/mlflow.db")
    assert sqlite_path("postgresql://mlflow@db/mlflow") is None
    assert sqlite_path("sqlite:///:memory:") is None
