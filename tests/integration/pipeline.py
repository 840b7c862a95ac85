"""A running pipeline for integration tests: consumer + worker threads on a given broker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import pika
from fastapi.testclient import TestClient

from mmlw.api.app import create_app
from mmlw.bench.sandbox import delete_topology
from mmlw.messaging.pika_publisher import PikaReadingsPublisher, pika_url
from mmlw.messaging.topology import Topology
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.celery_app import create_celery
from mmlw.workers.consumers.ingest import IngestConsumer
from mmlw.workers.consumers.scorer import PartitionScorer
from mmlw.workers.context import WorkerContext
from mmlw.workers.runtime import ingest_consumer_thread, scorer_thread, worker_thread
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
    scorer: PartitionScorer
    tasks: TaskTracker  # what the worker has left to do

    @property
    def store(self) -> Store:
        return self.context.store

    @property
    def topology(self) -> Topology:
        return self.context.topology

    def scoring_pending(self) -> int:
        """Scoring messages this process sent that the scorer has not acknowledged yet."""
        sent = getattr(self.context.dispatcher, "scores_sent", 0)
        return int(sent) - self.scorer.handled

    def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Until every scoring message sent so far is done, and then every task (the
        scorer sends notify tasks, which may send more): the store holds all it will."""

        def idle() -> bool:
            return self.scoring_pending() <= 0 and not self.tasks.pending()

        wait_for(
            idle,
            timeout_s,
            lambda: (
                f"the pipeline to finish: {self.scoring_pending()} scoring messages, "
                f"tasks {self.tasks.pending()}"
            ),
        )


@contextmanager
def running_pipeline(settings: Settings) -> Iterator[Pipeline]:
    context = WorkerContext(settings, migrate=True)
    app = create_celery(settings, context)
    with ExitStack() as stack:
        tasks = stack.enter_context(tracking_tasks())
        stack.enter_context(worker_thread(app, concurrency=2))
        scorer = stack.enter_context(scorer_thread(settings, context))
        consumer = stack.enter_context(ingest_consumer_thread(settings, context))
        yield Pipeline(settings, context, consumer, scorer, tasks)
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
        delete_topology(rabbitmq_url, Topology.from_settings(settings.broker))


def queue_depth(amqp_url: str, queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(pika_url(amqp_url)))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()
