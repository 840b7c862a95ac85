"""Celery tasks: thin, idempotent wrappers around :mod:`backend.services`."""

from __future__ import annotations

from celery import Celery, Task

from backend.errors import ServiceUnavailable
from backend.messaging.dispatch import PREDICT_TASK, TRAIN_TASK
from backend.services.scoring import score_batch
from backend.services.training import run_train_job
from workers.context import WorkerContext

__all__ = ["register_tasks"]


def register_tasks(app: Celery) -> None:
    def context() -> WorkerContext:
        return app.mmlw_context  # type: ignore[attr-defined, no-any-return]

    @app.task(name=TRAIN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True)
    def train(self: Task, job_id: str) -> None:
        ctx = context()
        run_train_job(job_id, store=ctx.store, registry=ctx.registry, settings=ctx.settings.models)

    @app.task(
        name=PREDICT_TASK,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=(ServiceUnavailable,),
        retry_backoff=True,
        max_retries=8,
    )
    def predict(self: Task, batch_id: int) -> dict[str, object]:
        ctx = context()
        outcome = score_batch(batch_id, store=ctx.store, models=ctx.models)
        return {"status": outcome.status, "n": outcome.n, "flagged": outcome.n_flagged}
