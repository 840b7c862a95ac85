"""Sends work to Celery queues and to the scorers, without importing the workers.

The API and the CLI enqueue train work through :class:`CeleryDispatcher`; the ingest
consumer sends the batches it stored to the scorer of each machine's partition
(:meth:`CeleryDispatcher.score`, a message on ``<ns>.score.<k>``). Task names are the
contract with ``mmlw.workers.tasks``; the scoring message (``{"batch_ids": [...]}``) is
the contract with ``mmlw.workers.consumers.scorer``.
A send the broker does not take raises :class:`ServiceUnavailable` with one line saying
why and what to do (:func:`~mmlw.messaging.broker_check.describe_broker_error`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from celery import Celery

from mmlw.errors import ServiceUnavailable
from mmlw.messaging.broker_check import describe_broker_error, is_broker_error
from mmlw.messaging.topology import Topology

__all__ = [
    "ALERTS_TICK_TASK",
    "MODELS_MAINTAIN_TASK",
    "NOTIFY_TASK",
    "PREDICT_TASK",
    "TRAIN_TASK",
    "TUNE_TASK",
    "CeleryDispatcher",
    "Dispatcher",
    "celery_config",
    "score_message",
    "transport_options",
]

TRAIN_TASK = "mmlw.train"
PREDICT_TASK = "mmlw.predict"
NOTIFY_TASK = "mmlw.notify"
ALERTS_TICK_TASK = "mmlw.alerts.tick"
MODELS_MAINTAIN_TASK = "mmlw.models.maintain"
TUNE_TASK = "mmlw.tune"  # configuration ranking, on the train queue


class Dispatcher(Protocol):
    def train(self, job_id: str) -> None: ...

    def predict(self, batch_id: int, version: int | None = None) -> None: ...

    def predict_many(self, batch_ids: Sequence[int], version: int | None = None) -> None: ...

    def score(self, batches: Sequence[tuple[int, str]]) -> None: ...

    def notify(self, delivery_id: int) -> None: ...

    def tune(self, job_id: str) -> None: ...


def transport_options(broker_url: str) -> dict[str, Any]:
    """Publisher confirms on RabbitMQ; a short polling interval on kombu's virtual
    transports (``memory://``), whose default of 1 s caps a worker at ~2 batches/s."""
    if broker_url.startswith(("amqp", "pyamqp")):
        return {"confirm_publish": True}
    return {"polling_interval": 0.01}


def _route(topology: Topology, kind: str) -> dict[str, str]:
    """Through the queue's own exchange: with only a queue named, Celery publishes to the
    default exchange (amq.default), and write permission there reaches every queue of the
    vhost (RabbitMQ checks the exchange only), so no broker user is granted it."""
    name = topology.task_queue_name(kind)
    return {"queue": name, "exchange": name, "routing_key": name}


def celery_config(broker_url: str, topology: Topology, predict_prefetch: int = 4) -> dict[str, Any]:
    """The Celery configuration shared by senders and workers (JSON only, late acks).

    A worker process holds ``predict_prefetch`` unacknowledged tasks per pool slot: with
    late acks nothing is lost by it, and the next task is already there when one ends
    (with 1, every task waits a broker round trip after the previous one's ack).
    """
    return {
        "broker_url": broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options(broker_url),
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": predict_prefetch,
        "task_queues": topology.task_queues(),
        "task_default_queue": topology.task_queue_name("predict"),
        "task_routes": {
            TRAIN_TASK: _route(topology, "train"),
            PREDICT_TASK: _route(topology, "predict"),
            NOTIFY_TASK: _route(topology, "notify"),
            ALERTS_TICK_TASK: _route(topology, "notify"),
            MODELS_MAINTAIN_TASK: _route(topology, "train"),
            TUNE_TASK: _route(topology, "train"),
        },
        "task_create_missing_queues": False,
        # Celery's control plane (remote control, pidbox queues, events) lives inside the
        # namespace too: another deployment's `celery control` never reaches these workers,
        # and the broker user of workers is granted exactly these names (messaging.provision)
        "control_exchange": f"{topology.namespace}.celery",
        "event_exchange": f"{topology.namespace}.celeryev",
        "event_queue_prefix": f"{topology.namespace}.celeryev",
        "worker_hijack_root_logger": False,
        "enable_utc": True,
    }


# as Celery's own task publishing: a dropped connection is tried again a few times within
# about two seconds, then the error goes to the sender (the ingest requeues its messages)
_SCORE_RETRY = {"max_retries": 3, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def score_message(batch_ids: Sequence[int]) -> dict[str, list[int]]:
    """The body of a scoring message: stored batches of one partition's machines."""
    return {"batch_ids": sorted(int(i) for i in batch_ids)}


class CeleryDispatcher:
    """Enqueues tasks by name on a Celery app (its own, or the worker's), and sends
    scoring messages through the same app's connections (publisher confirms)."""

    def __init__(self, app: Celery, topology: Topology | None = None) -> None:
        self._app = app
        self._topology = topology or Topology()
        self._lock = threading.Lock()
        self.scores_sent = 0  # scoring messages confirmed by the broker (tests wait on it)

    @classmethod
    def from_broker(cls, broker_url: str, topology: Topology) -> CeleryDispatcher:
        app = Celery("mmlw-sender", set_as_current=False)
        app.conf.update(celery_config(broker_url, topology))
        return cls(app, topology)

    def _broker_error(self, exc: Exception) -> ServiceUnavailable:
        url = str(self._app.conf.broker_url)
        return ServiceUnavailable(describe_broker_error(exc, url))

    def _send(self, name: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> None:
        try:
            self._app.send_task(name, args=args, kwargs=kwargs or {})
        except Exception as exc:
            if not is_broker_error(exc):
                raise
            raise self._broker_error(exc) from exc

    def score(self, batches: Sequence[tuple[int, str]]) -> None:
        """Have the scorers stream these stored ``(batch id, machine id)`` batches with
        their machines' champions: one message per partition, on ``<ns>.score.<k>``,
        where only the partition's current owner receives it (single active consumer),
        in the order sent."""
        partitions: dict[int, list[int]] = {}
        for batch_id, machine_id in batches:
            partitions.setdefault(self._topology.partition_of(machine_id), []).append(batch_id)
        try:
            with self._app.producer_or_acquire() as producer:
                for partition, batch_ids in sorted(partitions.items()):
                    queue = self._topology.score_queue(partition)
                    producer.publish(
                        score_message(batch_ids),
                        exchange=queue.exchange,
                        routing_key=queue.routing_key,
                        serializer="json",
                        delivery_mode=2,
                        declare=[queue],  # once per connection: a message is never unroutable
                        retry=True,
                        retry_policy=_SCORE_RETRY,
                    )
                    with self._lock:
                        self.scores_sent += 1
        except Exception as exc:
            if not is_broker_error(exc):
                raise
            raise self._broker_error(exc) from exc

    def train(self, job_id: str) -> None:
        self._send(TRAIN_TASK, [job_id])

    def predict(self, batch_id: int, version: int | None = None) -> None:
        """A Celery predict task: score with ``version`` (backfills, imports), or with
        the champion. Live readings take :meth:`score` instead: the owner of the machine's
        partition streams them in order; a predict task streams through the same
        checkpoint, so both together still stream each batch once."""
        kwargs = {} if version is None else {"version": version}
        self._send(PREDICT_TASK, [batch_id], kwargs)

    def predict_many(self, batch_ids: Sequence[int], version: int | None = None) -> None:
        """One predict task for several batches (scored together, stored in one
        transaction, alert rules evaluated once per machine)."""
        if batch_ids:
            kwargs = {} if version is None else {"version": version}
            self._send(PREDICT_TASK, [list(batch_ids)], kwargs)

    def notify(self, delivery_id: int) -> None:
        """Send one alert notification (a delivery of the outbox)."""
        self._send(NOTIFY_TASK, [delivery_id])

    def tune(self, job_id: str) -> None:
        """Rank detector configs on a machine's history (a tune job)."""
        self._send(TUNE_TASK, [job_id])
