"""Running the pipeline's consumers inside the current process (demo and tests).

``mmlw worker`` and ``mmlw ingest`` run the same pieces as separate processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Protocol, TypeVar

from celery import Celery
from celery.worker import WorkController
from celery.worker import state as worker_state
from kombu import Connection

from mmlw.messaging.dispatch import transport_options
from mmlw.messaging.topology import TASK_QUEUES, Topology
from mmlw.settings import Settings
from mmlw.workers.consumers.ingest import IngestConsumer
from mmlw.workers.consumers.scorer import PartitionScorer
from mmlw.workers.context import WorkerContext
from mmlw.workers.predict_work import predict_batches

__all__ = ["ingest_consumer_thread", "scorer_thread", "worker_thread"]


class _ThreadWorker(WorkController):
    """A WorkController that tells us when its consumer is ready, and that notices a stop
    request within a quarter second: an idle event loop otherwise sleeps in its poll for
    up to ten seconds before it looks at the termination flag again."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer) -> None:  # type: ignore[no-untyped-def]
        hub = getattr(self, "hub", None)
        if hub is not None:
            hub.call_repeatedly(0.25, _wake)
        self.ready.set()


def _wake() -> None:
    """A timer that wakes the worker's event loop (see _ThreadWorker)."""


@contextmanager
def worker_thread(
    app: Celery,
    *,
    queues: Sequence[str] = TASK_QUEUES,
    concurrency: int = 2,
    pool: str = "threads",
    ready_timeout_s: float = 30.0,
) -> Iterator[WorkController]:
    """Run a Celery worker on ``queues`` in a daemon thread; stop it on exit.

    The app becomes the process default, as Celery's pools look tasks up there.
    """
    app.set_default()
    app.conf.worker_enable_remote_control = False  # no pidbox: nothing to cancel across threads
    topology = Topology(app.mmlw_context.settings.broker.namespace)  # type: ignore[attr-defined]
    worker = _ThreadWorker(
        app=app,
        queues=[topology.task_queue_name(q) for q in queues],
        concurrency=concurrency,
        pool=pool,
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        hostname=f"mmlw-inproc-{id(app):x}@localhost",
    )
    thread = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
    thread.start()
    if not worker.ready.wait(ready_timeout_s):
        raise RuntimeError("the in-process Celery worker did not start")
    try:
        yield worker
    finally:
        # Celery's own test worker stops this way: the worker thread notices the flag
        # and shuts itself down (stopping it from this thread would race its connection).
        worker_state.should_terminate = 0
        thread.join(30)
        worker_state.should_terminate = None
        if thread.is_alive():
            raise RuntimeError("the in-process Celery worker did not stop within 30 s")


class _Runnable(Protocol):
    def run(self) -> None: ...

    def stop(self) -> None: ...


R = TypeVar("R", bound=_Runnable)


@contextmanager
def _in_thread(
    settings: Settings, build: Callable[[Connection], R], name: str, join_s: float
) -> Iterator[R]:
    """Build a consumer on a connection of its own, run it in a daemon thread, stop it
    and release the connection on exit."""
    connection = Connection(
        settings.broker.url, heartbeat=0, transport_options=transport_options(settings.broker.url)
    )
    running = build(connection)
    thread = threading.Thread(target=running.run, name=name, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.stop()
        thread.join(join_s)
        connection.release()


@contextmanager
def ingest_consumer_thread(settings: Settings, context: WorkerContext) -> Iterator[IngestConsumer]:
    """Run the ingest consumer in a daemon thread; stop it on exit."""
    build = partial(IngestConsumer.for_context, context=context)
    with _in_thread(settings, build, "ingest-consumer", 15) as consumer:
        yield consumer


def partition_scorer(connection: Connection, context: WorkerContext) -> PartitionScorer:
    """A scorer of every partition, wired to a worker context (``mmlw scorer``, the demo,
    tests)."""
    return PartitionScorer(
        connection,
        context.topology,
        partial(predict_batches, context),
        rebalance_s=context.settings.broker.score_rebalance_s,
        prefetch=context.settings.broker.score_prefetch,
    )


@contextmanager
def scorer_thread(
    settings: Settings, context: WorkerContext, ready_timeout_s: float = 30.0
) -> Iterator[PartitionScorer]:
    """Run a partition scorer in a daemon thread, subscribed before this returns; stop it
    on exit (after the message in hand)."""
    build = partial(partition_scorer, context=context)
    with _in_thread(settings, build, "partition-scorer", 30) as scorer:
        if not scorer.ready.wait(ready_timeout_s):
            raise RuntimeError("the in-process scorer did not subscribe to its partitions")
        yield scorer
