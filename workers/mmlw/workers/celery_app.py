"""``create_celery(settings)``: the Celery app of MMLW workers, with its tasks registered."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

from mmlw.messaging.dispatch import ALERTS_TICK_TASK, MODELS_MAINTAIN_TASK, celery_config
from mmlw.messaging.topology import Topology
from mmlw.settings import Settings
from mmlw.workers.context import WorkerContext
from mmlw.workers.tasks import RETENTION_TASK, ROLLUP_TASK, register_tasks

__all__ = ["MODELS_MAINTAIN_EVERY_S", "create_celery", "default_node_name", "worker_context"]

MODELS_MAINTAIN_EVERY_S = 60.0  # how often beat looks for due retrains and promotions


def create_celery(settings: Settings, context: WorkerContext | None = None) -> Celery:
    """A Celery app bound to ``settings`` (nothing connects until a worker starts)."""
    topology = Topology(settings.broker.namespace)
    app = Celery("mmlw", set_as_current=False)
    app.conf.update(celery_config(settings.broker.url, topology, settings.broker.predict_prefetch))
    train_queue = topology.task_queue_name("train")
    app.conf.beat_schedule = {
        "alerts-tick": {"task": ALERTS_TICK_TASK, "schedule": settings.alerts.tick_s},
        "retention-apply": {  # through the train queue's own exchange, as dispatch routes
            "task": RETENTION_TASK,
            "schedule": crontab(minute=0, hour=settings.retention.hour_utc),
            "options": dict.fromkeys(("queue", "exchange", "routing_key"), train_queue),
        },
        "rollups-apply": {  # a few minutes past every hour: the hour that closed
            "task": ROLLUP_TASK,
            "schedule": crontab(minute=5),
            "options": dict.fromkeys(("queue", "exchange", "routing_key"), train_queue),
        },
    }
    drift = settings.models.drift
    if (
        settings.models.retrain_every_s is not None
        or settings.models.auto_promote
        or (drift.enabled and drift.promote)
    ):
        app.conf.beat_schedule["models-maintain"] = {
            "task": MODELS_MAINTAIN_TASK,
            "schedule": MODELS_MAINTAIN_EVERY_S,
        }
    app.mmlw_context = context or WorkerContext(settings)  # type: ignore[attr-defined]
    register_tasks(app)
    return app


def worker_context(app: Celery) -> WorkerContext:
    return app.mmlw_context  # type: ignore[attr-defined, no-any-return]


def default_node_name(namespace: str, pid: int | None = None) -> str:
    """A Celery node name of its own for each worker of each deployment on a host
    (``celery@<host>`` for all of them made the second worker fail on its pidbox queue).

    >>> default_node_name("mmlw", pid=42)
    'mmlw-42@%h'
    """
    return f"{namespace}-{os.getpid() if pid is None else pid}@%h"
