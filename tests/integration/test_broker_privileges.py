"""Least privilege on the real RabbitMQ: the users ``mmlw.messaging.provision`` creates.

The module provisions the role users in a vhost of its own (unique user names too) with
``rabbitmqctl`` and deletes them afterwards; each test starts with empty queues. With the
machines' credentials a publisher can publish readings (the ingest queue gets them) and
nothing else: consuming, purging, declaring, binding and Celery's control exchange are
refused (403 ACCESS_REFUSED). The other roles are enough to run the pipeline, each process
as its own user; and the compose definitions, rendered by the rabbitmq service's
entrypoint, grant the same permissions.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pika
import pika.exceptions
import pytest
from kombu import Connection, Exchange

from mmlw.errors import ServiceUnavailable
from mmlw.messaging.dispatch import CeleryDispatcher
from mmlw.messaging.kombu_publisher import KombuReadingsPublisher
from mmlw.messaging.pika_publisher import PikaReadingsPublisher
from mmlw.messaging.provision import (
    ROLES,
    BrokerAccount,
    Rabbitmqctl,
    broker_accounts,
    provision,
)
from mmlw.messaging.topology import Topology
from mmlw.schemas import JobState, ReadingsBatch, TrainRequest
from mmlw.services.jobs import submit_training
from mmlw.settings import BrokerSettings, Settings
from mmlw.workers.celery_app import create_celery
from mmlw.workers.context import WorkerContext
from mmlw.workers.runtime import ingest_consumer_thread, scorer_thread, worker_thread
from mmlw.workers.simulator import SyntheticMachine
from tests.conftest import unavailable
from tests.integration.pipeline import wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.xdist_group("broker-privileges")]

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "docker" / "rabbitmq-entrypoint.sh"
DEFINITIONS = ROOT / "configs" / "rabbitmq" / "definitions.json"


@dataclass
class Broker:
    """Role users provisioned in a vhost of their own, and the admin's view of it."""

    host: str
    vhost: str
    topology: Topology
    accounts: dict[str, BrokerAccount]
    passwords: dict[str, str]
    admin_url: str

    def url(self, role: str) -> str:
        user, password = self.accounts[role].user, self.passwords[role]
        return f"amqp://{user}:{password}@{self.host}/{quote(self.vhost, safe='')}"

    def admin_channel(self, stack: ExitStack) -> Any:
        connection = pika.BlockingConnection(pika.URLParameters(self.admin_url))
        stack.callback(connection.close)
        return connection.channel()


def rabbitmqctl() -> Rabbitmqctl:
    """``rabbitmqctl`` on this host (as root or the rabbitmq user), else skip (fail in CI)."""
    ctl = Rabbitmqctl(timeout_s=60)
    reason = None
    if shutil.which("rabbitmqctl") is None:
        reason = "rabbitmqctl is not installed"
    else:
        try:
            ctl.ensure_vhost("/")
        except ServiceUnavailable as exc:
            reason = f"rabbitmqctl cannot administer the local broker: {exc}"
    if reason is not None:
        unavailable(reason)
    return ctl


@pytest.fixture(scope="module")
def broker(rabbitmq_url: str) -> Iterator[Broker]:
    ctl = rabbitmqctl()
    tag = uuid.uuid4().hex[:10]
    vhost, namespace = f"mmlw-test-{tag}", f"t{tag}"
    accounts = broker_accounts(namespace, user_prefix=f"mmlw-test-{tag}")
    passwords = {a.role: secrets.token_hex(16) for a in accounts}
    admin = urlsplit(rabbitmq_url)
    host = admin.netloc.rpartition("@")[2]
    admin_user = unquote(admin.username or "guest")
    login = f"{admin.username or 'guest'}:{admin.password or 'guest'}"
    admin_url = f"amqp://{login}@{host}/{quote(vhost, safe='')}"
    try:
        provision(ctl, accounts, passwords, vhost=vhost)
        ctl.set_permissions(vhost, admin_user, ".*", ".*", ".*")
        topology = Topology(namespace)
        with Connection(admin_url) as connection:  # as `mmlw ingest` and a worker declare them
            channel = connection.channel()
            topology.declare(channel)
            for queue in topology.task_queues():
                queue.bind(channel).declare()
            pidbox = Exchange(f"{namespace}.celery.pidbox", "fanout", durable=False)
            pidbox.bind(channel).declare()
        yield Broker(
            host,
            vhost,
            topology,
            {a.role: a for a in accounts},
            passwords,
            admin_url,
        )
    finally:
        for account in accounts:
            with suppress(ServiceUnavailable):
                ctl.delete_user(account.user)
        with suppress(ServiceUnavailable):
            ctl.delete_vhost(vhost)


@pytest.fixture(autouse=True)
def empty_queues(broker: Broker) -> None:
    with ExitStack() as stack:
        channel = broker.admin_channel(stack)
        topology = broker.topology
        for name in (topology.ingest_queue_name, topology.dead_queue_name):
            channel.queue_purge(name)
        for queue in topology.task_queues():
            channel.queue_purge(queue.name)


def readings(machine_id: str = "pump-1", n: int = 5) -> ReadingsBatch:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    return SyntheticMachine(machine_id, seed=4, n_sensors=3, start=start).read(n).to_batch()


def test_provisioning_grants_each_role_exactly_its_permissions(broker: Broker) -> None:
    listed = subprocess.run(
        ["rabbitmqctl", "--quiet", "list_permissions", "-p", broker.vhost, "--formatter", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    granted = {row["user"]: row for row in json.loads(listed.stdout)}
    for account in broker.accounts.values():
        row = granted[account.user]
        assert (row["configure"], row["write"], row["read"]) == (
            account.configure,
            account.write,
            account.read,
        )
    assert broker.accounts["publisher"].configure == broker.accounts["publisher"].read == "^$"


@pytest.mark.parametrize("declare", [None, False])
def test_the_publisher_publishes_readings_into_the_ingest_queue(
    broker: Broker, declare: bool | None
) -> None:
    batch = readings()
    with PikaReadingsPublisher(broker.url("publisher"), broker.topology, declare=declare) as pub:
        pub.publish(batch)
        assert pub.stats.confirmed == 1
    with ExitStack() as stack:
        channel = broker.admin_channel(stack)
        method, properties, body = channel.basic_get(broker.topology.ingest_queue_name)
        assert method is not None, "the message did not reach the ingest queue"
        assert properties.message_id == str(batch.message_id)
        assert body == batch.to_wire()


def test_the_publisher_cannot_declare_even_when_told_to(broker: Broker) -> None:
    with (
        PikaReadingsPublisher(broker.url("publisher"), broker.topology, declare=True) as pub,
        pytest.raises(ServiceUnavailable, match=r"access refused.*ACCESS_REFUSED"),
    ):
        pub.publish(readings())


def _publish(exchange: str, routing_key: str) -> Callable[[Any, Broker], None]:
    def publish(channel: Any, _: Broker) -> None:
        channel.confirm_delivery()
        channel.basic_publish(exchange, routing_key, b'{"shutdown": true}', mandatory=False)

    return publish


REFUSED: dict[str, Callable[[Any, Broker], Any]] = {
    "consume the ingest queue": lambda ch, b: ch.basic_consume(
        b.topology.ingest_queue_name, lambda *_: None
    ),
    "get from the ingest queue": lambda ch, b: ch.basic_get(b.topology.ingest_queue_name),
    "purge the ingest queue": lambda ch, b: ch.queue_purge(b.topology.ingest_queue_name),
    "delete the ingest queue": lambda ch, b: ch.queue_delete(b.topology.ingest_queue_name),
    "consume the dead letters": lambda ch, b: ch.basic_get(b.topology.dead_queue_name),
    "consume a task queue": lambda ch, b: ch.basic_get(b.topology.task_queue_name("predict")),
    "declare a queue": lambda ch, b: ch.queue_declare(f"{b.topology.namespace}.mine"),
    "declare a server-named queue": lambda ch, b: ch.queue_declare("", exclusive=True),
    "declare an exchange": lambda ch, b: ch.exchange_declare(f"{b.topology.namespace}.x"),
    "redeclare the readings exchange": lambda ch, b: ch.exchange_declare(
        b.topology.readings_exchange_name, "topic", durable=True
    ),
    "bind the ingest queue": lambda ch, b: ch.queue_bind(
        b.topology.ingest_queue_name, b.topology.readings_exchange_name, "extra"
    ),
    "delete the readings exchange": lambda ch, b: ch.exchange_delete(
        b.topology.readings_exchange_name
    ),
    # `celery control shutdown` publishes to the mailbox exchange <ns>.celery.pidbox
    "reach Celery's control exchange": lambda ch, b: _publish(
        f"{b.topology.namespace}.celery.pidbox", ""
    )(ch, b),
    "publish a predict task": lambda ch, b: _publish(
        b.topology.task_queue_name("predict"), b.topology.task_queue_name("predict")
    )(ch, b),
    "bypass the exchange": lambda ch, b: _publish("", b.topology.ingest_queue_name)(ch, b),
    "publish a dead letter": lambda ch, b: _publish(b.topology.dead_exchange_name, "#")(ch, b),
}


@pytest.mark.parametrize("what", sorted(REFUSED))
def test_the_publisher_may_do_nothing_else(broker: Broker, what: str) -> None:
    with ExitStack() as stack:
        admin = broker.admin_channel(stack)
        admin.basic_publish("", broker.topology.ingest_queue_name, b"kept")  # to be purged
        connection = pika.BlockingConnection(pika.URLParameters(broker.url("publisher")))
        stack.callback(lambda: connection.is_open and connection.close())
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
            REFUSED[what](connection.channel(), broker)
            connection.process_data_events(time_limit=0.5)  # a late channel.close arrives
        assert refused.value.reply_code == 403, refused.value
        assert "ACCESS_REFUSED" in refused.value.reply_text
        ingest = admin.queue_declare(broker.topology.ingest_queue_name, passive=True)
        assert ingest.method.message_count == 1  # nothing taken, purged or deleted
        admin.exchange_declare(broker.topology.readings_exchange_name, passive=True)


def test_each_process_runs_as_its_own_user(
    broker: Broker, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """The pipeline works with every process on its role's user: machines publish, ingest
    stores and sends batches to scoring, the API publishes and sends a train job, workers
    train and score (a scorer runs as the worker's user)."""
    base = make_settings(database_url=f"sqlite:///{tmp_path / 'mmlw.db'}")

    def as_role(role: str) -> Settings:
        broker_settings = BrokerSettings(url=broker.url(role), namespace=broker.topology.namespace)
        return base.model_copy(update={"broker": broker_settings})

    ingest_context = WorkerContext(as_role("ingest"), migrate=True)
    worker_context = WorkerContext(as_role("worker"))
    store = ingest_context.store
    machine = SyntheticMachine("pump-1", seed=3, n_sensors=3, warmup=10_000)
    try:
        with (
            worker_thread(create_celery(worker_context.settings, worker_context)),
            scorer_thread(worker_context.settings, worker_context),
            ingest_consumer_thread(ingest_context.settings, ingest_context),
            PikaReadingsPublisher(broker.url("publisher"), broker.topology) as machines,
        ):
            for _ in range(6):
                machines.publish(machine.read(50).to_batch())
            api_publisher = KombuReadingsPublisher(broker.url("api"), broker.topology)
            try:
                api_publisher.publish(machine.read(50).to_batch())  # POST .../readings
            finally:
                api_publisher.close()
            wait_for(lambda: store.machines.get("pump-1").n_readings == 350, what="350 stored")

            api = CeleryDispatcher.from_broker(broker.url("api"), broker.topology)
            job = submit_training(
                TrainRequest(machine_id="pump-1", last_n=350), store=store, dispatcher=api
            )
            wait_for(lambda: store.jobs.get(job.id).state.finished, what="the train job")
            done = store.jobs.get(job.id)
            assert done.state is JobState.SUCCEEDED, done.error

            machines.publish(machine.read(50).to_batch())
            wait_for(lambda: store.scores.count("pump-1") >= 400, what="scores of every reading")

            machines.publish_raw("pump-1", b"{not json", message_id="bad-1")  # dead-lettered
            wait_for(lambda: store.dead_letters.count() == 1, what="the dead letter")
            with ExitStack() as stack:  # the store's record first, then the broker's copy
                channel = broker.admin_channel(stack)
                dead = broker.topology.dead_queue_name
                wait_for(  # RabbitMQ routed it to <ns>.dead
                    lambda: channel.queue_declare(dead, passive=True).method.message_count == 1,
                    what="the dead letter's copy in <ns>.dead",
                )
    finally:
        worker_context.store.close()
        store.close()


def test_the_compose_definitions_grant_the_same_permissions(tmp_path: Path) -> None:
    """docker/rabbitmq-entrypoint.sh renders configs/rabbitmq/definitions.json with hashes
    of the passwords in its environment; RabbitMQ imports it (users renamed and moved to a
    vhost of their own here) and the users log in with those passwords."""
    ctl = rabbitmqctl()
    if not all(shutil.which(tool) for tool in ("sh", "sha256sum", "base64")):
        reason = "the entrypoint needs sh, sha256sum and base64"
        unavailable(reason)
    passwords = {f"RABBITMQ_{r.upper()}_PASSWORD": secrets.token_hex(16) for r in ROLES}
    passwords["RABBITMQ_PASSWORD"] = secrets.token_hex(16)
    rendered = tmp_path / "definitions.json"
    subprocess.run(
        ["sh", str(ENTRYPOINT), "true"],
        env={
            "PATH": os.environ["PATH"],
            "MMLW_RABBITMQ_DEFINITIONS_TEMPLATE": str(DEFINITIONS),
            "MMLW_RABBITMQ_DEFINITIONS": str(rendered),
            **passwords,
        },
        check=True,
        timeout=60,
    )
    definitions = json.loads(rendered.read_text())
    tag = uuid.uuid4().hex[:10]
    vhost = f"mmlw-test-{tag}"
    renamed = {u["name"]: f"{u['name']}-test-{tag}" for u in definitions["users"]}
    for user in definitions["users"]:
        assert "@hash:" not in user["password_hash"]
        user["name"] = renamed[user["name"]]
    for permission in definitions["permissions"]:
        assert permission["vhost"] == "/"
        permission.update(user=renamed[permission["user"]], vhost=vhost)
    definitions["vhosts"] = [{"name": vhost}]
    try:
        subprocess.run(  # asynchronous: wait for the users below
            ["rabbitmqctl", "--quiet", "import_definitions"],
            input=json.dumps(definitions),
            text=True,
            check=True,
            capture_output=True,
            timeout=60,
        )
        publisher = renamed["mmlw-publisher"]
        url = (
            f"amqp://{publisher}:{passwords['RABBITMQ_PUBLISHER_PASSWORD']}@127.0.0.1:5672/"
            f"{quote(vhost, safe='')}"
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                pika.BlockingConnection(pika.URLParameters(url)).close()
                break
            except pika.exceptions.AMQPConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        listed = subprocess.run(
            ["rabbitmqctl", "--quiet", "list_permissions", "-p", vhost, "--formatter", "json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        granted = {
            row["user"]: (row["configure"], row["write"], row["read"])
            for row in json.loads(listed.stdout)
        }
        for account in broker_accounts("mmlw"):
            permissions = (account.configure, account.write, account.read)
            assert granted[renamed[account.user]] == permissions, account.role
        assert granted[renamed["mmlw"]] == (".*", ".*", ".*")
    finally:
        for user in renamed.values():
            with suppress(ServiceUnavailable):
                ctl.delete_user(user)
        with suppress(ServiceUnavailable):
            ctl.delete_vhost(vhost)
