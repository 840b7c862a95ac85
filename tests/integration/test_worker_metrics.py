"""A prefork `mmlw worker --metrics-port` counts the work of every child, and a dead-letter
purge never lowers a ``_total`` counter."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from fastapi.testclient import TestClient

from mmlw.api.app import create_app
from mmlw.messaging.dispatch import CeleryDispatcher, celery_config
from mmlw.messaging.topology import Topology
from mmlw.ports import free_port
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas import TrainRequest
from mmlw.services.jobs import submit_training
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine
from tests.conftest import _create_pg_database, _drop_pg_database
from tests.integration.pipeline import delete_topology, wait_for
from tests.integration.test_metrics import samples
from tests.integration.test_processes import mmlw, process_env, terminate_all

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def worker(
    tmp_path: Path,
    rabbitmq_url: str,
    postgres_admin_url: str,
    tracking_uri: str,
    registry: MlflowRegistry,  # the MLflow store exists before two children open it
) -> Iterator[dict[str, Any]]:
    namespace = f"w{uuid.uuid4().hex[:10]}"
    db_name, db_url = _create_pg_database(postgres_admin_url)
    env = process_env(tmp_path, rabbitmq_url, db_url, tracking_uri, namespace, free_port())
    subprocess.run(mmlw("db", "upgrade"), env=env, check=True, capture_output=True, timeout=120)
    metrics_port = free_port()
    log_path = tmp_path / "worker.log"
    command = mmlw(
        "worker", "--pool", "prefork", "--concurrency", "2",
        "--metrics-port", str(metrics_port),
    )  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield {
                "namespace": namespace,
                "db_url": db_url,
                "log": log_path,
                "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
                "process": process,
            }
        finally:
            terminate_all([process])
            delete_topology(rabbitmq_url, Topology(namespace))
            _drop_pg_database(postgres_admin_url, db_name)


def tasks_per_child(app: Celery) -> list[int]:
    """How many tasks the worker's prefork pool handed to each of its children."""
    stats = app.control.inspect(timeout=5).stats() or {}
    (node,) = stats.values()
    return [int(n) for n in node["pool"]["writes"]["raw"].split(",")]


def test_prefork_children_are_counted_and_purges_keep_totals(
    worker: dict[str, Any], rabbitmq_url: str, make_settings: Callable[..., Settings]
) -> None:
    topology = Topology(worker["namespace"])
    app = Celery("probe", set_as_current=False)
    app.conf.update(celery_config(rabbitmq_url, topology))
    dispatcher = CeleryDispatcher(app)
    store = Store.open(worker["db_url"], migrate=False)
    try:
        machine = SyntheticMachine("pump-3", seed=5, faults=())
        for _ in range(8):
            store.readings.add(machine.read(50).to_batch())
        job = submit_training(
            TrainRequest(machine_id="pump-3", detector="pca"), store=store, dispatcher=dispatcher
        )
        wait_for(lambda: store.jobs.get(job.id).state.finished, 180, what="training")
        assert store.jobs.get(job.id).state.value == "succeeded", store.jobs.get(job.id).error
        batch_ids = [store.readings.add(machine.read(20).to_batch()).batch_id for _ in range(24)]
        for batch_id in batch_ids:  # one task each: the two children share them
            dispatcher.predict(batch_id)
        wait_for(lambda: store.scores.count("pump-3") == 400 + 24 * 20, 120, what="scores")
        predict_tasks = 1 + 24  # the backfill of 8 batches, then one per batch
        # the train task and 25 predict tasks, some in each child
        wait_for(lambda: sum(tasks_per_child(app)) == 26, 30, what="26 tasks run")
        assert min(tasks_per_child(app)) >= 2, tasks_per_child(app)

        def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return samples(httpx.get(worker["metrics"], timeout=10).text)

        wait_for(
            lambda: scrape().get(("mmlw_predict_seconds_count", ()), 0) >= predict_tasks,
            10,
            what=lambda: f"{predict_tasks} predict tasks counted: {scrape()}",
        )
        found = scrape()
        assert found[("mmlw_predict_seconds_count", ())] == predict_tasks
        assert found[("mmlw_model_load_seconds_count", ())] >= 2  # each child loads the model

        for n in range(3):
            store.dead_letters.add(source="amqp", reason=f"bad {n}", body=b"{")
        settings = make_settings(broker_url=rabbitmq_url, database_url=worker["db_url"])
        with TestClient(create_app(settings, store=store)) as client:
            before = samples(client.get("/metrics").text)
            assert before[("mmlw_batches_dead_lettered_total", ())] == 3
            assert store.dead_letters.purge(everything=True) == 3
            after = samples(client.get("/metrics").text)
    finally:
        store.close()
    totals = {key: value for key, value in before.items() if key[0].endswith("_total")}
    assert totals
    lowered = {key: (value, after.get(key)) for key, value in totals.items() if
               after.get(key, -1) < value}  # fmt: skip
    assert not lowered, f"_total counters lowered by a purge: {lowered}"
    assert worker["process"].poll() is None, "the worker exited"
