"""The scoring path's partitions on the real RabbitMQ: one owner per partition at a time
(the broker's single active consumer), partitions spread over the scorers by their own
rebalancing, in order, each message once; a scorer that goes hands its partitions on.

The scorers here record what they are given instead of scoring (the streaming itself is
tested with the store in test_stream_checkpoints and, across processes with a SIGKILL,
in test_faults)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from kombu import Connection

from mmlw.messaging.dispatch import CeleryDispatcher
from mmlw.messaging.topology import Topology
from mmlw.workers.consumers.scorer import PartitionScorer
from tests.integration.pipeline import delete_topology
from tests.support.wait import wait_for

pytestmark = [pytest.mark.rabbitmq]

PARTITIONS = 4
MACHINES = [f"m-{i}" for i in range(16)]


class Recorder:
    """What each scorer was handed, in order: (scorer, batch id)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.handled: list[tuple[str, int]] = []

    def handler(self, name: str) -> Callable[[list[int]], None]:
        def handle(batch_ids: list[int]) -> None:
            time.sleep(0.005)  # work takes time: messages wait, so partitions count as busy
            with self.lock:
                self.handled.extend((name, i) for i in batch_ids)

        return handle

    def ids(self) -> list[int]:
        with self.lock:
            return [i for _, i in self.handled]


@contextmanager
def scorer(
    url: str, topology: Topology, recorder: Recorder, name: str
) -> Iterator[PartitionScorer]:
    connection = Connection(url, heartbeat=0)
    running = PartitionScorer(connection, topology, recorder.handler(name), rebalance_s=0.3)
    thread = threading.Thread(target=running.run, name=name, daemon=True)
    thread.start()
    try:
        assert running.ready.wait(30), f"{name} did not subscribe"
        yield running
    finally:
        running.stop()
        thread.join(30)
        connection.release()


@pytest.fixture
def topology(rabbitmq_url: str) -> Iterator[Topology]:
    topology = Topology(f"s{uuid.uuid4().hex[:10]}", score_partitions=PARTITIONS)
    yield topology
    delete_topology(rabbitmq_url, topology)


class Sender:
    """Sends one batch id per machine per round, as the ingest consumer does."""

    def __init__(self, url: str, topology: Topology) -> None:
        self.dispatcher = CeleryDispatcher.from_broker(url, topology)
        self.topology = topology
        self.next_id = 1
        self.machine_of: dict[int, str] = {}

    def round(self, recorder: Recorder | None = None, backlog: int = 64) -> None:
        """One batch per machine; none while ``recorder`` is ``backlog`` behind."""
        if recorder is not None and self.next_id - 1 - len(recorder.ids()) >= backlog:
            return
        for machine in MACHINES:
            self.machine_of[self.next_id] = machine
            self.dispatcher.score([(self.next_id, machine)])
            self.next_id += 1

    def partition(self, batch_id: int) -> int:
        return self.topology.partition_of(self.machine_of[batch_id])


def test_partitions_spread_over_scorers_each_message_once_in_order(
    rabbitmq_url: str, topology: Topology
) -> None:
    assert {topology.partition_of(m) for m in MACHINES} == set(range(PARTITIONS))
    recorder, sender = Recorder(), Sender(rabbitmq_url, topology)
    with ExitStack() as stack:
        first = stack.enter_context(scorer(rabbitmq_url, topology, recorder, "a"))
        sender.round()  # the first scorer owns every partition until a second one comes
        wait_for(lambda: len(recorder.ids()) == len(MACHINES), 30, "the first round")
        assert first.held == set(range(PARTITIONS))
        second = stack.enter_context(scorer(rabbitmq_url, topology, recorder, "b"))

        def spread() -> bool:
            sender.round(recorder)
            return len(first.held) == len(second.held) == PARTITIONS // 2

        wait_for(spread, 60, lambda: f"two partitions each: {first.held}, {second.held}")
        assert first.held.isdisjoint(second.held)
        wait_for(lambda: len(recorder.ids()) == sender.next_id - 1, 30, "every message")

    ids = recorder.ids()
    assert sorted(ids) == list(range(1, sender.next_id)), "each message exactly once"
    for partition in range(PARTITIONS):  # a partition's messages in the order sent
        mine = [i for i in ids if sender.partition(i) == partition]
        assert mine == sorted(mine), f"partition {partition} out of order"
    owners = {name for name, _ in recorder.handled}
    assert owners == {"a", "b"}


def test_a_scorer_that_stops_hands_its_partitions_to_the_other(
    rabbitmq_url: str, topology: Topology
) -> None:
    recorder, sender = Recorder(), Sender(rabbitmq_url, topology)
    with scorer(rabbitmq_url, topology, recorder, "a") as first:
        with scorer(rabbitmq_url, topology, recorder, "b") as second:
            spread = lambda: sender.round(recorder) or len(second.held) == PARTITIONS // 2  # noqa: E731
            wait_for(spread, 60, lambda: f"b to hold half: {second.held}")
            wait_for(lambda: len(recorder.ids()) == sender.next_id - 1, 30, "the rounds")
            handed = set(first.held)
        assert len(handed) == PARTITIONS // 2
        stopped_at = sender.next_id
        sender.round()  # b is gone: a is the only subscriber of every partition
        wait_for(lambda: first.held == set(range(PARTITIONS)), 30, "a holds every partition")
        wait_for(lambda: len(recorder.ids()) == sender.next_id - 1, 30, "the last round")
    after = {name for name, i in recorder.handled if i >= stopped_at}
    assert after == {"a"}
    assert sorted(recorder.ids()) == list(range(1, sender.next_id))


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"batch_ids": "1"}', b'{"batch_ids": [-1]}', b"[]", b"\xff\xfe" * 40],
)
def test_an_unreadable_scoring_message_is_dropped_and_the_partition_goes_on(
    rabbitmq_url: str, topology: Topology, body: bytes
) -> None:
    """Whoever may publish to the scoring exchange: a body that is not a scoring message
    is logged and dropped (never requeued into a loop), and the partition's next message
    is streamed."""
    import pika

    from mmlw.messaging.pika_publisher import pika_url

    recorder, sender = Recorder(), Sender(rabbitmq_url, topology)
    machine = MACHINES[0]
    queue = topology.score_queue_name(topology.partition_of(machine))
    with scorer(rabbitmq_url, topology, recorder, "a") as running:
        connection = pika.BlockingConnection(pika.URLParameters(pika_url(rabbitmq_url)))
        try:
            connection.channel().basic_publish(topology.score_exchange_name, queue, body)
        finally:
            connection.close()
        sender.machine_of[1] = machine
        sender.dispatcher.score([(1, machine)])
        sender.next_id = 2
        wait_for(lambda: recorder.ids() == [1], 30, "the good message after the bad one")
        assert running.handled == 2  # the bad one acknowledged (dropped), then the good one


@pytest.mark.postgres
def test_a_scorer_process_serves_its_metrics(
    tmp_path: Path, rabbitmq_url: str, postgres_admin_url: str, tracking_uri: str
) -> None:
    """`mmlw scorer --metrics-port`: the scoring time of the batches it streamed."""
    import subprocess

    import httpx

    from mmlw.ports import free_port
    from mmlw.store import Store
    from mmlw.workers.simulator import SyntheticMachine
    from tests.conftest import _create_pg_database, _drop_pg_database
    from tests.integration.test_metrics import samples
    from tests.integration.test_processes import mmlw, process_env, terminate_all

    namespace = f"m{uuid.uuid4().hex[:10]}"
    db_name, db_url = _create_pg_database(postgres_admin_url)
    env = process_env(tmp_path, rabbitmq_url, db_url, tracking_uri, namespace, free_port())
    subprocess.run(mmlw("db", "upgrade"), env=env, check=True, capture_output=True, timeout=120)
    port = free_port()
    log = (tmp_path / "scorer.log").open("w")
    process = subprocess.Popen(
        mmlw("scorer", "--metrics-port", str(port)), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    topology = Topology(namespace)
    try:
        with Store.open(db_url) as store:
            machine = SyntheticMachine("pump-7", seed=7, faults=())
            batch_id = store.readings.add(machine.read(20).to_batch()).batch_id
        url = f"http://127.0.0.1:{port}/metrics"
        wait_for(
            lambda: httpx.get(url, timeout=5).status_code == 200,
            60,
            "the metrics",
            ignore=(httpx.HTTPError,),
        )
        CeleryDispatcher.from_broker(rabbitmq_url, topology).score([(batch_id, "pump-7")])
        count = ("mmlw_predict_seconds_count", ())
        wait_for(
            lambda: samples(httpx.get(url, timeout=5).text).get(count, 0) >= 1, 60, "one count"
        )
    finally:
        terminate_all([process])
        log.close()
        delete_topology(rabbitmq_url, topology)
        _drop_pg_database(postgres_admin_url, db_name)
