"""Celery tasks: thin, idempotent wrappers around :mod:`mmlw.services`."""

from __future__ import annotations

import logging
from typing import Literal

from celery import Celery, Task

from mmlw.errors import ServiceUnavailable
from mmlw.messaging.dispatch import (
    ALERTS_TICK_TASK,
    MODELS_MAINTAIN_TASK,
    NOTIFY_TASK,
    PREDICT_TASK,
    TRAIN_TASK,
    TUNE_TASK,
)
from mmlw.registry.base import CHAMPION
from mmlw.services.alerting import send_delivery, tick
from mmlw.services.retention import apply_retention
from mmlw.services.retraining import auto_promote, retrain_due
from mmlw.services.rollups import roll_up_closed
from mmlw.services.scoring import backfill_scores
from mmlw.services.training import run_train_job
from mmlw.services.tuning import run_tune_job
from mmlw.settings import TaskSettings
from mmlw.workers.context import WorkerContext
from mmlw.workers.predict_work import predict_batches

__all__ = ["RETENTION_TASK", "ROLLUP_TASK", "register_tasks"]

RETENTION_TASK = "mmlw.retention.apply"  # beat's daily prune (see celery_app)
ROLLUP_TASK = "mmlw.rollups.apply"  # beat's hourly rollup of the hour that closed

log = logging.getLogger(__name__)


def _time_limits(
    tasks: TaskSettings, kind: Literal["train", "tune", "predict"]
) -> dict[str, float | None]:
    """Celery's task options for the time limits of ``kind`` (see TaskSettings)."""
    soft, hard = tasks.limits(kind)
    return {"soft_time_limit": soft, "time_limit": hard}


def register_tasks(app: Celery) -> None:
    """Register on ``app`` only (``shared=False``): apps in one process never mix contexts.
    Train, tune and predict tasks get the time limits of ``settings.tasks``."""

    def context() -> WorkerContext:
        return app.mmlw_context  # type: ignore[attr-defined, no-any-return]

    limits = context().settings.tasks
    # job tasks: acknowledged after they ran, redelivered if their worker died
    durable = {"bind": True, "shared": False, "acks_late": True, "reject_on_worker_lost": True}

    @app.task(name=TRAIN_TASK, **durable, **_time_limits(limits, "train"))
    def train(self: Task, job_id: str) -> None:
        ctx = context()
        result = run_train_job(
            job_id, store=ctx.store, registry=ctx.registry, settings=ctx.settings.models
        )
        if result is not None and CHAMPION in result.aliases:
            machine_id = ctx.store.jobs.get(job_id).machine_id
            backfill_scores(machine_id, result.version, store=ctx.store, dispatcher=ctx.dispatcher)

    @app.task(name=TUNE_TASK, **durable, **_time_limits(limits, "tune"))
    def tune(self: Task, job_id: str) -> None:
        ctx = context()
        run_tune_job(job_id, store=ctx.store, settings=ctx.settings, dispatcher=ctx.dispatcher)

    @app.task(
        name=PREDICT_TASK,
        **durable,
        autoretry_for=(ServiceUnavailable,),
        retry_backoff=True,
        max_retries=8,
        **_time_limits(limits, "predict"),
    )
    def predict(
        self: Task, batch_id: int | list[int], version: int | None = None
    ) -> dict[str, object]:
        """Score one stored batch or several (``batch_id`` a list): see
        :func:`~mmlw.workers.predict_work.predict_batches`."""
        batch_ids = [batch_id] if isinstance(batch_id, int) else list(batch_id)
        return predict_batches(context(), batch_ids, version)

    @app.task(name=NOTIFY_TASK, **durable)
    def notify(self: Task, delivery_id: int) -> str:
        ctx = context()
        outcome = send_delivery(
            delivery_id, store=ctx.store, config=ctx.alerts_config, settings=ctx.settings
        )
        if outcome.retry_in_s is not None:
            raise self.retry(countdown=outcome.retry_in_s, max_retries=None)
        return outcome.status

    @app.task(name=ALERTS_TICK_TASK, bind=True, shared=False, ignore_result=True)
    def alerts_tick(self: Task) -> int:
        ctx = context()
        return tick(store=ctx.store, config=ctx.alerts_config, dispatcher=ctx.dispatcher)

    @app.task(name=MODELS_MAINTAIN_TASK, bind=True, shared=False, ignore_result=True)
    def models_maintain(self: Task) -> dict[str, list[str]]:
        ctx = context()
        settings = ctx.settings.models
        jobs = retrain_due(
            store=ctx.store, registry=ctx.registry, dispatcher=ctx.dispatcher, settings=settings
        )
        promoted = auto_promote(store=ctx.store, registry=ctx.registry, settings=settings)
        return {"retrain_jobs": jobs, "promoted": promoted}

    @app.task(name=RETENTION_TASK, bind=True, shared=False, ignore_result=True)
    def retention_apply(self: Task) -> dict[str, object]:
        ctx = context()
        report = apply_retention(ctx.store, ctx.settings.retention)
        log.info("retention: %s", report.summary())
        return report.summary()

    @app.task(name=ROLLUP_TASK, bind=True, shared=False, ignore_result=True)
    def rollups_apply(self: Task) -> str:
        """Roll up the hour that closed (the daily retention run does too, first): long
        ranges then read at most the current hour from raw batches."""
        rolled = roll_up_closed(context().store)
        log.info("rollups: %s", rolled)
        return str(rolled)
