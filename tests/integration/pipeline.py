"""A running pipeline for integration tests: consumer + worker threads on a given broker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pika
from fastapi.testclient import TestClient

from mmlw.api.app import create_app
from mmlw.messaging.pika_publisher import PikaReadingsPublisher, pika_url
from mmlw.messaging.topology import TASK_QUEUES, Topology
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.celery_app import create_celery
from mmlw.workers.consumers.ingest import IngestConsumer
from mmlw.workers.context import WorkerContext
from mmlw.workers.runtime import ingest_consumer_thread, worker_thread
from tests.support.tasks import TaskTracker, tracking_tasks
from tests.support.wait import wait_for

__all__ = [
    "Pipeline",
    "api_with_ingest",
    "delete_topology",
    "pipeline_stack",
    "queue_depth",
    "running_pipeline",
    "wait_for",
]


@dataclass
class Pipeline:
    settings: Settings
    context: WorkerContext
    consumer: IngestConsumer
    tasks: TaskTracker  # what the worker has left to do

    @property
    def store(self) -> Store:
        return self.context.store

    @property
    def topology(self) -> Topology:
        return self.context.topology


@contextmanager
def running_pipeline(settings: Settings) -> Iterator[Pipeline]:
    context = WorkerContext(settings, migrate=True)
    app = create_celery(settings, context)
    with ExitStack() as stack:
        tasks = stack.enter_context(tracking_tasks())
        stack.enter_context(worker_thread(app, concurrency=2))
        consumer = stack.enter_context(ingest_consumer_thread(settings, context))
        yield Pipeline(settings, context, consumer, tasks)
    context.store.close()


@contextmanager
def api_with_ingest(settings: Settings) -> Iterator[tuple[TestClient, WorkerContext]]:
    """The app on ``settings`` with the ingest consumer running in a thread (no worker)."""
    context = WorkerContext(settings, migrate=True)
    try:
        with ingest_consumer_thread(settings, context):
            app = create_app(
                settings,
                store=context.store,
                registry=context.registry,
                dispatcher=context.dispatcher,
            )
            with TestClient(app) as client:
                yield client, context
    finally:
        context.store.close()


@contextmanager
def pipeline_stack(
    settings: Settings, rabbitmq_url: str
) -> Iterator[tuple[Pipeline, PikaReadingsPublisher, TestClient]]:
    """A running pipeline on RabbitMQ, a pika publisher into it and the API over the same
    store, registry and dispatcher; the namespace's queues and exchanges removed after."""
    try:
        with (
            running_pipeline(settings) as pipeline,
            PikaReadingsPublisher(rabbitmq_url, pipeline.topology) as pub,
        ):
            app = create_app(
                settings,
                store=pipeline.store,
                registry=pipeline.context.registry,
                dispatcher=pipeline.context.dispatcher,
            )
            with TestClient(app) as client:
                yield pipeline, pub, client
    finally:
        delete_topology(rabbitmq_url, Topology(settings.broker.namespace))


def delete_topology(amqp_url: str, topology: Topology) -> None:
    """Remove every queue and exchange of a test namespace from RabbitMQ."""
    connection = pika.BlockingConnection(pika.URLParameters(pika_url(amqp_url)))
    channel = connection.channel()
    queues = [topology.ingest_queue_name, topology.dead_queue_name]
    queues += [topology.task_queue_name(q) for q in TASK_QUEUES]
    for name in queues:
        channel.queue_delete(name)
    exchanges = [topology.readings_exchange_name, topology.dead_exchange_name]
    exchanges += [topology.task_queue_name(q) for q in TASK_QUEUES]
    for name in exchanges:
        channel.exchange_delete(name)
    connection.close()


def queue_depth(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(pika_url(amqp_url)))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()
