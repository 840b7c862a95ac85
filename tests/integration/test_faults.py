"""Fault injection on the real RabbitMQ, PostgreSQL and separate processes: after each
fault and recovery, every published reading is stored once and scored once.

(a) ``kill -9`` of the scorer process while it holds unacknowledged batches, and of the
one of two scorers that owns the machine's partition (the other takes it over);
(b) RabbitMQ stopped and started (``rabbitmqctl stop_app`` / ``start_app``) while a
publisher streams, on a RabbitMQ node of the test's own (the shared broker is never
stopped); (c) the API and the ingest consumer killed and restarted while a client
streams through HTTP.

(a) and (c) share one deployment on the shared broker (each test on its own machine;
before each, whatever an earlier test killed is started again): starting it is most of
what these tests cost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from mmlw.messaging.pika_publisher import PikaReadingsPublisher
from mmlw.messaging.topology import Topology
from mmlw.ports import free_port
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine
from tests.conftest import (
    TEST_SIGNING_KEY,
    _create_pg_database,
    _drop_pg_database,
    unavailable,
)
from tests.integration.pipeline import delete_topology
from tests.integration.test_processes import mmlw, poll, process_env
from tests.support import rabbitmq_node
from tests.support.rabbitmq_node import RabbitNode

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]


class Deployment:
    """ingest, worker, scorer and API as separate processes (each its own process group)."""

    def __init__(self, tmp_path: Path, env: dict[str, str], base: str) -> None:
        self.tmp_path, self.env, self.base = tmp_path, env, base
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, Path] = {}
        self.client = httpx.Client(timeout=10)
        self._starts = 0

    def start(self, name: str, kind: str | None = None) -> None:
        """Start process ``name``, running ``kind`` (ingest, worker, scorer or api; default:
        name)."""
        commands = {
            "ingest": mmlw("ingest"),
            "worker": mmlw(
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "2",
                "--hostname",
                f"fault{self._starts}@%h",
            ),
            "scorer": mmlw("scorer"),
            "api": mmlw("api"),
        }
        self._starts += 1
        self.logs[name] = self.tmp_path / f"{name}-{self._starts}.log"
        log = self.logs[name].open("w")
        self.processes[name] = subprocess.Popen(
            commands[kind or name], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def owner(self, partition: int, candidates: tuple[str, ...]) -> str | None:
        """Which of the running ``candidates`` (scorers) says it streams ``partition``."""
        line = f"scorer streams partition {partition} ("
        owners = [n for n in candidates if line in self.logs[n].read_text(errors="replace")]
        return owners[-1] if len(owners) == 1 else None

    def running(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def heal(self) -> None:
        """Bring the deployment back to how it started (one serves the tests that kill
        parts of it): ingest, worker, API and one scorer named ``scorer``, running; any
        other scorer an earlier test left is stopped."""
        for name in list(self.processes):
            if name not in ("ingest", "worker", "api", "scorer") or not self.running(name):
                self.stop(name)
        for name in ("ingest", "worker", "scorer", "api"):
            if name not in self.processes:
                self.start(name)
        poll("the API", lambda: self.client.get(f"{self.base}/health").status_code == 200)

    def kill(self, name: str) -> None:
        """SIGKILL to the whole process group: no warm shutdown, no acks."""
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self, name: str) -> None:
        """SIGTERM to the process group (SIGKILL after 30 s); an exited one is reaped."""
        process = self.processes.pop(name)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)

    def machine(self, machine_id: str) -> dict[str, Any]:
        response = self.client.get(f"{self.base}/api/v1/machines/{machine_id}")
        if response.status_code == 404:  # nothing stored yet
            return {"n_readings": 0, "n_scored": 0}
        response.raise_for_status()
        return dict(response.json())

    def train(self, machine_id: str, **request: object) -> None:
        api = f"{self.base}/api/v1"
        job = self.client.post(f"{api}/machines/{machine_id}/train", json=request).json()
        done = poll(
            "the train job",
            lambda: (
                (j := self.client.get(f"{api}/jobs/{job['id']}").json())["state"]
                in ("succeeded", "failed")
                and j
            ),
        )
        assert done["state"] == "succeeded", done["error"]


@contextmanager
def running_deployment(
    tmp_path: Path, broker_url: str, postgres_admin_url: str, tracking_uri: str
) -> Iterator[Deployment]:
    """ingest, worker, scorer and API as processes on ``broker_url`` and a fresh database."""
    namespace = f"f{uuid.uuid4().hex[:10]}"
    db_name, db_url = _create_pg_database(postgres_admin_url)
    port = free_port()
    env = process_env(
        tmp_path, broker_url, db_url, tracking_uri, namespace, port,
        MMLW_MODELS__DRIFT__ENABLED="false",
    )  # fmt: skip
    subprocess.run(mmlw("db", "upgrade"), env=env, check=True, capture_output=True, timeout=120)
    running = Deployment(tmp_path, env, f"http://127.0.0.1:{port}")
    try:
        for name in ("ingest", "worker", "scorer", "api"):
            running.start(name)
        poll("the API", lambda: running.client.get(f"{running.base}/health").status_code == 200)
        yield running
    finally:
        running.stop_all()
        with suppress(Exception):  # a private broker may already be gone
            delete_topology(broker_url, Topology(namespace))  # 16 partitions, as deployed
        _drop_pg_database(postgres_admin_url, db_name)


@pytest.fixture(scope="module")
def shared_deployment(
    tmp_path_factory: pytest.TempPathFactory,
    rabbitmq_url: str,
    postgres_admin_url: str,
    tracking_uri: str,
) -> Iterator[Deployment]:
    """One deployment on the shared broker for the tests that kill and restart parts of
    it (each on its own machine); starting it costs ~30 CPU-s, paid once."""
    root = tmp_path_factory.mktemp("faults")
    with running_deployment(root, rabbitmq_url, postgres_admin_url, tracking_uri) as d:
        yield d


@pytest.fixture
def deployment(shared_deployment: Deployment) -> Deployment:
    shared_deployment.heal()
    return shared_deployment


@pytest.fixture
def private_broker() -> Iterator[RabbitNode]:
    """A RabbitMQ node of this test's own: stopping it disturbs no other test."""
    reason = rabbitmq_node.available()
    if reason:
        unavailable(reason)
    with rabbitmq_node.private_rabbitmq() as node:
        yield node


def stored_counts(db_url: str, machine_id: str) -> tuple[int, int, int]:
    """(readings, champion scores, score rows per batch at most) straight from the tables."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            readings = conn.scalar(
                sa.text("SELECT COALESCE(SUM(n), 0) FROM reading_batches WHERE machine_id = :m"),
                {"m": machine_id},
            )
            scores = conn.scalar(
                sa.text(
                    "SELECT COALESCE(SUM(n), 0) FROM score_batches "
                    "WHERE machine_id = :m AND role = 'champion'"
                ),
                {"m": machine_id},
            )
            per_batch = conn.scalar(
                sa.text(
                    "SELECT COALESCE(MAX(c), 0) FROM (SELECT COUNT(*) AS c FROM score_batches "
                    "WHERE machine_id = :m AND role = 'champion' GROUP BY batch_id) t"
                ),
                {"m": machine_id},
            )
    finally:
        engine.dispose()
    return int(readings), int(scores), int(per_batch)


@contextmanager
def streaming(
    rabbitmq_url: str, topology: Topology, machine: SyntheticMachine, batches: int, size: int
) -> Iterator[threading.Thread]:
    """Publish ``batches`` batches of ``size`` readings from a thread, a few milliseconds
    apart, so a fault injected while it runs lands mid-stream whatever the machine's
    speed; joined (and its error raised) on exit."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with PikaReadingsPublisher(rabbitmq_url, topology) as pub:
                for _ in range(batches):
                    pub.publish(machine.read(size).to_batch())
                    time.sleep(0.005)
        except BaseException as exc:  # reported on exit
            failed.append(exc)

    thread = threading.Thread(target=run, name="machine", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        thread.join(120)
    assert not failed, failed[0]


def warm_up(
    deployment: Deployment,
    pub: PikaReadingsPublisher,
    machine: SyntheticMachine,
    **train: object,
) -> None:
    for _ in range(8):
        pub.publish(machine.read(50).to_batch())
    poll("400 readings", lambda: deployment.machine(machine.machine_id)["n_readings"] == 400)
    deployment.train(machine.machine_id, **train)
    poll("backfill", lambda: deployment.machine(machine.machine_id)["n_scored"] == 400)


#: the tests on the shared deployment run on one xdist worker, which starts it once
ON_THE_SHARED_DEPLOYMENT = pytest.mark.xdist_group("fault-deployment")


@ON_THE_SHARED_DEPLOYMENT
def test_kill_9_of_the_scorer_holding_unacked_batches_loses_and_doubles_nothing(
    deployment: Deployment, rabbitmq_url: str
) -> None:
    topology = Topology(deployment.env["MMLW_BROKER__NAMESPACE"])
    machine = SyntheticMachine("press-9", seed=9, faults=())
    with PikaReadingsPublisher(rabbitmq_url, topology) as pub:
        warm_up(deployment, pub, machine)
    total = 400 + 600 * 20
    with streaming(rabbitmq_url, topology, machine, 600, 20) as machine_sends:
        poll("scoring under way", lambda: deployment.machine("press-9")["n_scored"] > 600, 60)
        deployment.kill("scorer")
        assert machine_sends.is_alive(), "the machine finished before the scorer was killed"
        deployment.start("scorer")
    poll(
        f"all {total} scored",
        lambda: (m := deployment.machine("press-9"))["n_scored"] == total and m,
        120,
    )
    readings, scores, per_batch = stored_counts(deployment.env["MMLW_DATABASE_URL"], "press-9")
    assert (readings, scores, per_batch) == (total, total, 1)


def served_and_replayed(deployment: Deployment, machine_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The machine's stored champion scores in stored order, and those of one
    uninterrupted offline stream of its stored readings through the same model."""
    env = deployment.env
    store = Store.open(env["MMLW_DATABASE_URL"], migrate=False)
    try:
        registry = MlflowRegistry(
            env["MMLW_MLFLOW_TRACKING_URI"],
            signing_key=TEST_SIGNING_KEY.encode(),
            model_prefix=env["MMLW_MODELS__REGISTERED_MODEL_PREFIX"],
        )
        parts = sorted(store.scores.query(machine_id), key=lambda part: part.batch_id)
        assert {part.model_version for part in parts} == {1}
        model = registry.load(machine_id, 1)
        batches = store.readings.get_many([part.batch_id for part in parts])
        values = np.concatenate([model.align(batch.frame()) for batch in batches])
        replayed, _ = model.stream(values, None)
        return np.concatenate([part.scores for part in parts]), replayed.scores
    finally:
        store.close()


@ON_THE_SHARED_DEPLOYMENT
def test_kill_9_of_the_scorer_owning_the_partition_hands_it_over_at_the_checkpoint(
    deployment: Deployment, rabbitmq_url: str
) -> None:
    """A stateful detector (trailing windows over 69 readings) on a machine that streams
    while the one of two scorer processes that owns its partition (the broker's single
    active consumer) is killed: the broker makes the other the owner, it continues from
    the last checkpoint, every reading is scored once, and the served scores are those of
    one uninterrupted offline stream of the same readings."""
    topology = Topology(deployment.env["MMLW_BROKER__NAMESPACE"])
    deployment.start("scorer-2", "scorer")
    machine = SyntheticMachine("kiln-4", seed=4, faults=())
    partition = topology.partition_of("kiln-4")
    scorers = ("scorer", "scorer-2")
    with PikaReadingsPublisher(rabbitmq_url, topology) as pub:
        warm_up(deployment, pub, machine, detector="level_change")
    total = 400 + 800 * 15
    with streaming(rabbitmq_url, topology, machine, 800, 15) as machine_sends:
        poll("scoring under way", lambda: deployment.machine("kiln-4")["n_scored"] > 700, 60)
        owner = poll("the partition's owner", lambda: deployment.owner(partition, scorers), 30)
        deployment.kill(owner)
        assert machine_sends.is_alive(), "the machine finished before its scorer was killed"
    poll(
        f"all {total} scored by the other scorer",
        lambda: (m := deployment.machine("kiln-4"))["n_scored"] == total and m,
        120,
    )
    (survivor,) = set(scorers) - {owner}
    assert deployment.owner(partition, (survivor,)) == survivor, "it took the partition over"
    readings, scores, per_batch = stored_counts(deployment.env["MMLW_DATABASE_URL"], "kiln-4")
    assert (readings, scores, per_batch) == (total, total, 1)
    served, replayed = served_and_replayed(deployment, "kiln-4")
    np.testing.assert_allclose(served, replayed, rtol=1e-9, atol=1e-12)


@ON_THE_SHARED_DEPLOYMENT
def test_api_and_ingest_killed_and_restarted_while_a_client_streams(
    deployment: Deployment,
) -> None:
    machine = SyntheticMachine("lathe-7", seed=7, faults=())
    batches = [machine.read(25).to_batch() for _ in range(80)]
    url = f"{deployment.base}/api/v1/machines/lathe-7/readings"
    headers = {"content-type": "application/json"}
    retried = 0
    for i, batch in enumerate(batches):
        if i == 30:  # mid-stream: both die at once, and come back a moment later
            deployment.kill("api")
            deployment.kill("ingest")
            deployment.start("ingest")
            deployment.start("api")
        while True:  # a client that retries the same message (same message_id) until 202
            try:
                response = deployment.client.post(url, content=batch.to_wire(), headers=headers)
                if response.status_code == 202:
                    break
            except httpx.HTTPError:
                pass
            retried += 1
            time.sleep(0.2)
    assert retried > 0, "the restart was not noticed by the client"
    poll("every batch stored", lambda: deployment.machine("lathe-7")["n_readings"] == 2000, 90)
    time.sleep(1.0)
    readings, _scores, _ = stored_counts(deployment.env["MMLW_DATABASE_URL"], "lathe-7")
    assert readings == 2000


def test_rabbitmq_stopped_and_started_while_a_publisher_streams(
    tmp_path: Path,
    private_broker: RabbitNode,
    postgres_admin_url: str,
    tracking_uri: str,
) -> None:
    machine = SyntheticMachine("mill-4", seed=4, faults=())
    with running_deployment(
        tmp_path, private_broker.url, postgres_admin_url, tracking_uri
    ) as deployment:
        topology = Topology(deployment.env["MMLW_BROKER__NAMESPACE"])
        with PikaReadingsPublisher(private_broker.url, topology) as pub:
            warm_up(deployment, pub, machine)
            for i in range(120):
                if i == 40:
                    private_broker.ctl("stop_app")

                    def restart() -> None:
                        time.sleep(3.0)
                        private_broker.ctl("start_app")

                    threading.Thread(target=restart, daemon=True).start()
                pub.publish(machine.read(20).to_batch())  # waits, reconnects and resends
        total = 400 + 120 * 20
        poll(
            f"all {total} stored and scored after the broker came back",
            lambda: (m := deployment.machine("mill-4"))["n_scored"] == total and m,
            180,
        )
        db_url = deployment.env["MMLW_DATABASE_URL"]
        readings, scores, per_batch = stored_counts(db_url, "mill-4")
        assert (readings, scores, per_batch) == (total, total, 1)
