"""Publishers when the real RabbitMQ cannot take a message: unreachable (a URL to a
closed port: the shared broker itself is never stopped) or refusing (an ingest queue at
its length limit nacks). On the machine side batches wait in the local spool and go out
oldest first, each removed once confirmed, from a new publisher instance as well; the
HTTP API answers 503 with Retry-After."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from mmlw.api.app import create_app
from mmlw.cli import main
from mmlw.errors import BrokerBusy, ServiceUnavailable
from mmlw.messaging.pika_publisher import PikaReadingsPublisher, pika_url
from mmlw.messaging.topology import Topology
from mmlw.ports import free_port
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas.readings import ReadingsBatch
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine
from tests.integration.pipeline import delete_topology, running_pipeline, wait_for
from tests.integration.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.rabbitmq]


@pytest.fixture
def closed_url() -> str:
    """An AMQP URL nothing listens on: connections are refused at once."""
    return f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"


@pytest.fixture
def small_topology(rabbitmq_url: str) -> Iterator[Topology]:
    topology = Topology(f"s{uuid.uuid4().hex[:10]}", ingest_max_length=3)
    yield topology
    delete_topology(rabbitmq_url, topology)


def batches(n: int, machine_id: str = "pump-3") -> list[ReadingsBatch]:
    machine = SyntheticMachine(machine_id, seed=3, faults=())
    return [machine.read(10).to_batch() for _ in range(n)]


def spool_all(url: str, topology: Topology, spool: Path, items: list[ReadingsBatch]) -> None:
    with PikaReadingsPublisher(
        url, topology, max_retries=2, backoff_s=0.01, spool_path=spool
    ) as down:
        for batch in items:
            down.publish(batch)  # returns: kept in the spool
        assert (down.stats.spooled, down.stats.confirmed) == (len(items), 0)
        assert down.stats.connection_failures == 2  # one budget, then straight to the spool
        assert down.spooled == len(items)


def take(amqp_url: str, queue: str) -> list[str]:
    """Every message id waiting in ``queue``, in queue order (consumed)."""
    connection = pika.BlockingConnection(pika.URLParameters(pika_url(amqp_url)))
    ids = []
    try:
        channel = connection.channel()
        while True:
            method, properties, _body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return ids
            ids.append(properties.message_id)
    finally:
        connection.close()


def test_flush_goes_oldest_first_and_removes_only_what_the_broker_confirmed(
    rabbitmq_url: str, closed_url: str, small_topology: Topology, tmp_path: Path
) -> None:
    spool = tmp_path / "spool.db"
    items = batches(8)
    ids = [str(b.message_id) for b in items]
    spool_all(closed_url, small_topology, spool, items)

    with PikaReadingsPublisher(
        rabbitmq_url, small_topology, max_refusals=2, backoff_s=0.01, spool_path=spool
    ) as up:
        with pytest.raises(BrokerBusy, match="is full"):
            up.flush()  # the queue takes 3, then refuses the 4th
        assert (up.stats.flushed, up.stats.refused, up.spooled) == (3, 2, 5)
        assert take(rabbitmq_url, small_topology.ingest_queue_name) == ids[:3]
        with pytest.raises(BrokerBusy):
            up.flush()
        assert take(rabbitmq_url, small_topology.ingest_queue_name) == ids[3:6]
        assert up.flush() == 2
        assert up.spooled == 0
    assert take(rabbitmq_url, small_topology.ingest_queue_name) == ids[6:]


def test_a_refused_publish_waits_and_is_spooled_after_its_budget(
    rabbitmq_url: str, small_topology: Topology, tmp_path: Path
) -> None:
    items = batches(6)
    with PikaReadingsPublisher(
        rabbitmq_url, small_topology, max_refusals=3, backoff_s=0.01, spool_path=tmp_path / "s.db"
    ) as pub:
        for batch in items:
            pub.publish(batch)
        # 3 taken; the 4th refused 3 times, then spooled; the 5th and 6th queue behind it
        assert (pub.stats.confirmed, pub.stats.refused, pub.spooled) == (3, 3, 3)
        take(rabbitmq_url, small_topology.ingest_queue_name)
        assert pub.flush() == 3
    assert take(rabbitmq_url, small_topology.ingest_queue_name) == [
        str(b.message_id) for b in items[3:]
    ]


def test_without_a_spool_an_unreachable_broker_raises(closed_url: str) -> None:
    with (
        PikaReadingsPublisher(closed_url, max_retries=2, backoff_s=0.01) as pub,
        pytest.raises(ServiceUnavailable, match="after 2 attempt"),
    ):
        pub.publish(batches(1)[0])


def test_batches_spooled_while_the_broker_was_unreachable_are_all_stored_once(
    make_settings: Callable[..., Settings], rabbitmq_url: str, closed_url: str, tmp_path: Path
) -> None:
    settings = make_settings(broker_url=rabbitmq_url)
    spool = tmp_path / "machine-spool.db"
    everything = batches(15, "press-5")
    offline, online = everything[:10], everything[10:]
    try:
        with running_pipeline(settings) as pipeline:
            spool_all(closed_url, pipeline.topology, spool, offline)
            with PikaReadingsPublisher(rabbitmq_url, pipeline.topology, spool_path=spool) as up:
                for batch in online:
                    up.publish(batch)  # the spooled ten go first
                assert (up.stats.flushed, up.stats.confirmed, up.spooled) == (10, 15, 0)
            wait_for(
                lambda: pipeline.consumer.stats.readings == 150,
                30,
                lambda: f"150 readings stored, have {pipeline.consumer.stats}",
            )
            assert pipeline.store.machines.get("press-5").n_readings == 150
            assert pipeline.consumer.stats.duplicates == 0
            assert PikaReadingsPublisher(rabbitmq_url, spool_path=spool).spooled == 0
    finally:
        delete_topology(rabbitmq_url, Topology(settings.broker.namespace))


def test_the_api_answers_503_with_retry_after_while_the_ingest_queue_is_full(
    make_settings: Callable[..., Settings], rabbitmq_url: str, registry: MlflowRegistry
) -> None:
    settings = make_settings(broker_url=rabbitmq_url)
    broker = settings.broker.model_copy(update={"ingest_max_length": 2})
    settings = settings.model_copy(update={"broker": broker})
    headers = {"content-type": "application/json"}
    Store.open(settings.resolved_database_url).close()  # `mmlw db upgrade` ran
    try:
        with TestClient(create_app(settings)) as client:  # no consumer: the queue fills
            responses = [
                client.post(
                    f"/api/v1/machines/{b.machine_id}/readings",
                    content=b.to_wire(),
                    headers=headers,
                )
                for b in batches(3)
            ]
    finally:
        delete_topology(rabbitmq_url, Topology.from_settings(settings.broker))
    assert [r.status_code for r in responses] == [202, 202, 503]
    assert responses[2].headers["retry-after"] == "1"
    assert "is full and refused the batch" in responses[2].json()["detail"]


def test_mmlw_simulate_sends_what_its_spool_holds_before_anything_new(
    rabbitmq_url: str, closed_url: str, tmp_path: Path
) -> None:
    topology = Topology(f"s{uuid.uuid4().hex[:10]}")  # the default limit, as the CLI has
    spool = tmp_path / "spool.db"
    old = batches(3)
    spool_all(closed_url, topology, spool, old)
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("MMLW_")}
    env |= {
        "MMLW_ENVIRONMENT": "test",
        "MMLW_DATA_DIR": str(tmp_path / "data"),
        "MMLW_BROKER__URL": rabbitmq_url,
        "MMLW_BROKER__NAMESPACE": topology.namespace,
    }
    args = "simulate --machines 1 --max-readings 20 --batch-size 10 --speedup 0 --warmup 0"
    try:
        result = CliRunner().invoke(main, [*args.split(), "--spool", str(spool)], env=env)
        assert result.exit_code == 0, result.output
        sent = take(rabbitmq_url, topology.ingest_queue_name)
    finally:
        delete_topology(rabbitmq_url, topology)
    assert sent[:3] == [str(b.message_id) for b in old]
    assert len(sent) == 5
    assert "published 20 readings" in result.output
    assert "spool" not in result.output  # nothing left behind


def test_a_publisher_spools_through_an_outage_and_catches_up_when_the_broker_is_back(
    make_settings: Callable[..., Settings], rabbitmq_url: str, tmp_path: Path
) -> None:
    """One publisher instance, its connection cut mid-stream (a proxy in between)."""
    settings = make_settings(broker_url=rabbitmq_url)
    items = batches(30, "mill-2")
    try:
        with running_pipeline(settings) as pipeline, TcpProxy(("127.0.0.1", 5672)) as proxy:
            with PikaReadingsPublisher(
                f"amqp://guest:guest@127.0.0.1:{proxy.port}/%2F",
                pipeline.topology,
                max_retries=2,
                backoff_s=0.01,
                max_backoff_s=0.01,
                spool_path=tmp_path / "spool.db",
            ) as pub:
                for i, batch in enumerate(items):
                    if i == 10:
                        proxy.cut()
                    if i == 20:
                        proxy.restore()
                    pub.publish(batch)

                # the later publishes usually sent the spool already; a loaded machine may
                # need a few more tries, as a publisher that keeps running makes them
                def drained() -> bool:
                    with contextlib.suppress(ServiceUnavailable):
                        pub.flush()
                    return pub.spooled == 0

                wait_for(drained, 30, "the spool to drain")
            stats, left = pub.stats, pub.spooled
            wait_for(
                lambda: pipeline.consumer.stats.readings == 300,
                30,
                lambda: f"300 readings stored, have {pipeline.consumer.stats}",
            )
            assert pipeline.store.machines.get("mill-2").n_readings == 300
    finally:
        delete_topology(rabbitmq_url, Topology(settings.broker.namespace))
    assert stats.spooled >= 10, stats  # the ten sent during the outage at least
    assert (stats.flushed, left) == (stats.spooled, 0)
    assert stats.connection_failures > 0
