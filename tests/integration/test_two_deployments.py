"""Two deployments on one RabbitMQ, each with two workers on this host: every worker
starts (node names of their own: no pidbox collision), and each deployment's control
plane reaches its own workers only."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from celery import Celery

from mmlw.messaging.dispatch import celery_config
from mmlw.messaging.topology import Topology
from mmlw.store import Store
from tests.integration.pipeline import delete_topology
from tests.integration.test_processes import mmlw, process_env, terminate_all
from tests.support.wait import wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


def control(rabbitmq_url: str, namespace: str) -> Celery:
    app = Celery("mmlw-test-control", set_as_current=False)
    app.conf.update(celery_config(rabbitmq_url, Topology(namespace)))
    return app


def test_two_deployments_with_two_workers_each_run_side_by_side(
    tmp_path: Path, rabbitmq_url: str, tracking_uri: str
) -> None:
    namespaces = [f"d{uuid.uuid4().hex[:8]}" for _ in range(2)]
    workers: dict[str, list[subprocess.Popen[bytes]]] = {}
    logs: list[Path] = []
    try:
        for namespace in namespaces:
            home = tmp_path / namespace
            home.mkdir()
            database_url = f"sqlite:///{home / 'mmlw.db'}"
            Store.open(database_url).close()  # `mmlw db upgrade` ran
            env = process_env(home, rabbitmq_url, database_url, tracking_uri, namespace, 0)
            for k in range(2):
                log = home / f"worker-{k}.log"
                logs.append(log)
                workers.setdefault(namespace, []).append(
                    subprocess.Popen(
                        mmlw("worker", "--concurrency", "1", "--queues", "predict"),
                        env=env,
                        stdout=log.open("w"),
                        stderr=subprocess.STDOUT,
                    )
                )
        replies: dict[str, set[str]] = {}

        def every_worker_answers() -> bool:
            for namespace in namespaces:
                answers = control(rabbitmq_url, namespace).control.ping(timeout=1.0)
                replies[namespace] = {name for answer in answers for name in answer}
            dead = [p for ps in workers.values() for p in ps if p.poll() is not None]
            assert not dead, "a worker exited:\n" + "\n".join(
                log.read_text(errors="replace")[-1500:] for log in logs
            )
            return all(len(nodes) == 2 for nodes in replies.values())

        wait_for(every_worker_answers, 120, lambda: f"two workers per deployment: {replies}")
        for namespace in namespaces:
            assert len(replies[namespace]) == 2, replies
            assert all(node.startswith(f"{namespace}-") for node in replies[namespace]), replies
        assert replies[namespaces[0]].isdisjoint(replies[namespaces[1]])
        assert all(p.poll() is None for ps in workers.values() for p in ps)
    finally:
        terminate_all(p for ps in workers.values() for p in ps)
        for namespace in namespaces:
            delete_topology(rabbitmq_url, Topology(namespace))
