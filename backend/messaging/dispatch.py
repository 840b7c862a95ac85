"""Sends work to Celery queues without importing the workers.

The API and the CLI enqueue train work through :class:`TaskDispatcher`; the ingest
consumer enqueues predict work. Task names are the contract with ``workers.tasks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from celery import Celery

from backend.messaging.topology import Topology

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

    def notify(self, delivery_id: int) -> None: ...

    def tune(self, job_id: str) -> None: ...


def transport_options(broker_url: str) -> dict[str, Any]:
    """Publisher confirms on RabbitMQ; a short polling interval on kombu's virtual
    transports (``memory://``), whose default of 1 s caps a worker at ~2 batches/s."""
    if broker_url.startswith(("amqp", "pyamqp")):
        return {"confirm_publish": True}
    return {"polling_interval": 0.01}


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
            TRAIN_TASK: {"queue": topology.task_queue_name("train")},
            PREDICT_TASK: {"queue": topology.task_queue_name("predict")},
            NOTIFY_TASK: {"queue": topology.task_queue_name("notify")},
            ALERTS_TICK_TASK: {"queue": topology.task_queue_name("notify")},
            MODELS_MAINTAIN_TASK: {"queue": topology.task_queue_name("train")},
            TUNE_TASK: {"queue": topology.task_queue_name("train")},
        },
        "task_create_missing_queues": False,
        # Celery's control plane (remote control, pidbox queues, events) lives inside the
        # namespace too: another deployment's `celery control` never reaches these workers
        "control_exchange": f"{topology.namespace}.celery",
        "event_exchange": f"{topology.namespace}.celeryev",
        "worker_hijack_root_logger": False,
        "enable_utc": True,
    }


class CeleryDispatcher:
    """Enqueues tasks by name on a Celery app (its own, or the worker's)."""

    def __init__(self, app: Celery) -> None:
        self._app = app

    @classmethod
    def from_broker(cls, broker_url: str, topology: Topology) -> CeleryDispatcher:
        app = Celery("mmlw-sender", set_as_current=False)
        app.conf.update(celery_config(broker_url, topology))
        return cls(app)

    def train(self, job_id: str) -> None:
        self._app.send_task(TRAIN_TASK, args=[job_id])

    def predict(self, batch_id: int, version: int | None = None) -> None:
        """Score with the champion, or with ``version`` when given (backfills)."""
        kwargs = {} if version is None else {"version": version}
        self._app.send_task(PREDICT_TASK, args=[batch_id], kwargs=kwargs)

    def predict_many(self, batch_ids: Sequence[int], version: int | None = None) -> None:
        """One predict task for several batches (scored together, stored in one
        transaction, alert rules evaluated once per machine)."""
        if batch_ids:
            kwargs = {} if version is None else {"version": version}
            self._app.send_task(PREDICT_TASK, args=[list(batch_ids)], kwargs=kwargs)

    def notify(self, delivery_id: int) -> None:
        """Send one alert notification (a delivery of the outbox)."""
        self._app.send_task(NOTIFY_TASK, args=[delivery_id])

    def tune(self, job_id: str) -> None:
        """Rank detector configs on a machine's history (a tune job)."""
        self._app.send_task(TUNE_TASK, args=[job_id])
