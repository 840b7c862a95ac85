"""A flood on the real RabbitMQ and PostgreSQL with ``mmlw ingest``, one slow
``mmlw scorer`` and a ``mmlw worker`` (solo pool, for training) as separate processes: a
publisher sends far faster than the scorer scores. The scoring backlog pauses the ingest
consumer, the ingest queue stops at
its length limit, the broker refuses the publisher, which waits and sends again; memory
stays bounded and, once drained, every reading is stored and scored exactly once."""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pika
import pytest

from mmlw.messaging.dispatch import CeleryDispatcher
from mmlw.messaging.pika_publisher import PikaReadingsPublisher, pika_url
from mmlw.messaging.topology import Topology
from mmlw.ports import free_port
from mmlw.schemas.jobs import JobState, TrainRequest
from mmlw.services.jobs import submit_training
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine
from tests.conftest import _create_pg_database, _drop_pg_database
from tests.integration.pipeline import delete_topology, wait_for
from tests.integration.test_faults import stored_counts
from tests.integration.test_processes import mmlw, process_env, terminate_all

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

INGEST_LIMIT = 20  # messages in <ns>.ingest
PREDICT_LIMIT = 10  # messages in the scoring queues before ingest pauses
PREFETCH = 16  # mmlw ingest --prefetch
FLOOD = 400  # batches of 5 readings
MACHINE = "pump-8"


@dataclass
class Flood:
    env: dict[str, str]
    db_url: str
    topology: Topology
    logs: Path
    pids: dict[str, int] = field(default_factory=dict)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


class Watcher:
    """Samples both queues' depths (passive declares) and the processes' RSS."""

    def __init__(self, amqp_url: str, topology: Topology, pids: dict[str, int]) -> None:
        self.amqp_url, self.pids = amqp_url, pids
        scoring = topology.score_queue_name(topology.partition_of(MACHINE))
        self.queues = [topology.ingest_queue_name, scoring]
        self.peak_depth = dict.fromkeys(self.queues, 0)
        self.peak_rss = {name: rss_mb(pid) for name, pid in pids.items()}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(pika_url(self.amqp_url)))
        channel = connection.channel()
        try:
            while not self._stop.wait(0.01):
                for queue in self.queues:
                    depth = channel.queue_declare(queue, passive=True).method.message_count
                    self.peak_depth[queue] = max(self.peak_depth[queue], depth)
                for name, pid in self.pids.items():
                    self.peak_rss[name] = max(self.peak_rss[name], rss_mb(pid))
                self.samples += 1
        finally:
            connection.close()


@pytest.fixture
def flood(
    tmp_path: Path, rabbitmq_url: str, postgres_admin_url: str, tracking_uri: str
) -> Iterator[Flood]:
    namespace = f"q{uuid.uuid4().hex[:10]}"
    db_name, db_url = _create_pg_database(postgres_admin_url)
    env = process_env(
        tmp_path, rabbitmq_url, db_url, tracking_uri, namespace, free_port(),
        MMLW_BROKER__INGEST_MAX_LENGTH=str(INGEST_LIMIT),
        MMLW_BROKER__PREDICT_BACKLOG_LIMIT=str(PREDICT_LIMIT),
        # one batch per scoring message: the per-message cost keeps the scorer slow enough
        MMLW_BROKER__PREDICT_BATCHES_PER_TASK="1",
        MMLW_MODELS__DRIFT__ENABLED="false",
    )  # fmt: skip
    subprocess.run(mmlw("db", "upgrade"), env=env, check=True, capture_output=True, timeout=120)
    commands = {
        "ingest": mmlw("ingest", "--prefetch", str(PREFETCH)),
        "worker": mmlw("worker", "--pool", "solo", "--concurrency", "1"),
        "scorer": mmlw("scorer"),
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    running = Flood(env, db_url, Topology(namespace, INGEST_LIMIT), tmp_path)
    try:
        for name, command in commands.items():
            with (tmp_path / f"{name}.log").open("w") as log:  # the child keeps its own copy
                processes[name] = subprocess.Popen(
                    command, env=env, stdout=log, stderr=subprocess.STDOUT
                )
            running.pids[name] = processes[name].pid
        yield running
    finally:
        terminate_all(processes.values())
        delete_topology(rabbitmq_url, running.topology)
        _drop_pg_database(postgres_admin_url, db_name)


def test_a_flood_is_held_back_at_the_queue_limit_and_everything_is_scored_once(
    flood: Flood, rabbitmq_url: str
) -> None:
    machine = SyntheticMachine(MACHINE, seed=8, faults=())
    store = Store.open(flood.db_url)
    try:
        with PikaReadingsPublisher(
            rabbitmq_url, flood.topology, max_refusals=100_000, backoff_s=0.01, max_backoff_s=0.1
        ) as pub:
            for _ in range(8):
                pub.publish(machine.read(50).to_batch())
            wait_for(lambda: stored_counts(flood.db_url, "pump-8")[0] == 400, 90, "warm-up")
            dispatcher = CeleryDispatcher.from_broker(rabbitmq_url, flood.topology)
            job = submit_training(
                TrainRequest(machine_id="pump-8", last_n=400), store=store, dispatcher=dispatcher
            )
            wait_for(lambda: store.jobs.get(job.id).state.finished, 90, "the train job")
            assert store.jobs.get(job.id).state is JobState.SUCCEEDED
            wait_for(lambda: stored_counts(flood.db_url, "pump-8")[1] == 400, 60, "backfill")

            before = {name: rss_mb(pid) for name, pid in flood.pids.items()}
            with Watcher(rabbitmq_url, flood.topology, flood.pids) as watcher:
                for _ in range(FLOOD):
                    pub.publish(machine.read(5).to_batch())
                total = 400 + FLOOD * 5
                wait_for(
                    lambda: stored_counts(flood.db_url, "pump-8") == (total, total, 1),
                    120,
                    lambda: (
                        f"{total} stored and scored once: {stored_counts(flood.db_url, 'pump-8')}"
                    ),
                )
            stats = pub.stats
    finally:
        store.close()

    ingest_queue, predict_queue = watcher.queues
    print(
        f"\nflood: {FLOOD} batches, publisher {stats}, {watcher.samples} samples; "
        f"peak depth {watcher.peak_depth} (limits {INGEST_LIMIT} / {PREDICT_LIMIT}); "
        f"RSS MB before {before}, peak {watcher.peak_rss}"
    )
    assert stats.confirmed == 8 + FLOOD
    assert stats.refused > 0, "the publisher was never refused: no backpressure reached it"
    assert watcher.peak_depth[ingest_queue] <= INGEST_LIMIT
    # the scoring backlog stays near its limit: what was in flight when ingest paused
    assert watcher.peak_depth[predict_queue] <= PREDICT_LIMIT + 2 * PREFETCH
    assert "paused taking readings" in (flood.logs / "ingest.log").read_text()
    for name, peak in watcher.peak_rss.items():
        assert peak < before[name] + 300, f"{name} grew from {before[name]:.0f} to {peak:.0f} MB"
