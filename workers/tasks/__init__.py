"""Celery tasks: thin, idempotent wrappers around :mod:`backend.services`."""

from __future__ import annotations

import logging

from celery import Celery, Task

from backend.errors import ServiceUnavailable
from backend.messaging.dispatch import (
    ALERTS_TICK_TASK,
    MODELS_MAINTAIN_TASK,
    NOTIFY_TASK,
    PREDICT_TASK,
    TRAIN_TASK,
)
from backend.observability.metrics import instruments
from backend.registry.base import CHAMPION
from backend.services.alerting import evaluate_machine, send_delivery, tick
from backend.services.drift import observe as observe_drift
from backend.services.retraining import auto_promote, retrain_due
from backend.services.scoring import backfill_scores, score_batch
from backend.services.training import run_train_job
from workers.context import WorkerContext

__all__ = ["register_tasks"]

log = logging.getLogger(__name__)


def register_tasks(app: Celery) -> None:
    """Register on ``app`` only (``shared=False``): apps in one process never mix contexts."""

    def context() -> WorkerContext:
        return app.mmlw_context  # type: ignore[attr-defined, no-any-return]

    @app.task(name=TRAIN_TASK, bind=True, shared=False, acks_late=True, reject_on_worker_lost=True)
    def train(self: Task, job_id: str) -> None:
        ctx = context()
        result = run_train_job(
            job_id, store=ctx.store, registry=ctx.registry, settings=ctx.settings.models
        )
        if result is not None and CHAMPION in result.aliases:
            machine_id = ctx.store.jobs.get(job_id).machine_id
            backfill_scores(machine_id, result.version, store=ctx.store, dispatcher=ctx.dispatcher)

    @app.task(
        name=PREDICT_TASK,
        bind=True,
        shared=False,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=(ServiceUnavailable,),
        retry_backoff=True,
        max_retries=8,
    )
    def predict(self: Task, batch_id: int, version: int | None = None) -> dict[str, object]:
        ctx = context()
        with instruments().predict_seconds.time():
            outcome = score_batch(batch_id, store=ctx.store, models=ctx.models, version=version)
        log.debug("predict batch %s (version %s): %s", batch_id, version, outcome.status)
        if outcome.status == "scored" and version is None and outcome.champion is not None:
            assert outcome.timestamps_us is not None and outcome.scores is not None
            observe_drift(
                outcome.machine_id,
                outcome.champion,
                outcome.timestamps_us,
                outcome.scores,
                store=ctx.store,
                dispatcher=ctx.dispatcher,
                settings=ctx.settings.models.drift,
            )
        if outcome.status != "no_model" and version is None:
            # backfills (an explicit version) score history and do not alert on it
            try:
                evaluate_machine(
                    outcome.machine_id,
                    store=ctx.store,
                    config=ctx.alerts_config,
                    dispatcher=ctx.dispatcher,
                )
            except Exception:  # the scores are stored; the next batch or tick re-evaluates
                log.exception("alert evaluation after batch %s failed", batch_id)
        return {"status": outcome.status, "n": outcome.n, "flagged": outcome.n_flagged}

    @app.task(name=NOTIFY_TASK, bind=True, shared=False, acks_late=True, reject_on_worker_lost=True)
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
