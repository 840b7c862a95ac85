"""Submitting work: the same function behind ``POST .../train`` and ``mmlw train``; and
running a queued job once (:func:`run_job`, shared by train and tune jobs)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from pydantic import BaseModel

from mmlw.errors import MMLWError, ServiceUnavailable
from mmlw.messaging.dispatch import Dispatcher
from mmlw.registry.base import ModelRegistry
from mmlw.schemas.jobs import JobKind, JobOut, JobState, TrainRequest
from mmlw.settings import ModelSettings
from mmlw.store import Store

__all__ = ["InlineTrainer", "create_training_job", "enqueue_job", "run_job", "submit_training"]

log = logging.getLogger(__name__)
R = TypeVar("R", bound=BaseModel)


def create_training_job(request: TrainRequest, *, store: Store) -> JobOut:
    """Check the request against the catalog and the store, then record a queued job."""
    # imported on use: the catalog loads scikit-learn, which the API needs for nothing else
    from mmlw.detectors.catalog import build_detector

    build_detector(request.detector, request.params)
    store.machines.get(request.machine_id)
    return store.jobs.create(JobKind.TRAIN, request.machine_id, request.model_dump(mode="json"))


def submit_training(request: TrainRequest, *, store: Store, dispatcher: Dispatcher) -> JobOut:
    """Record a queued train job and enqueue it; the job id is the handle to poll."""
    job = create_training_job(request, store=store)
    enqueue_job(job, dispatcher.train, store=store)
    return job


def enqueue_job(job: JobOut, send: Callable[[str], None], *, store: Store) -> None:
    """Hand a recorded job to the queue with ``send``; if that fails, the job is failed
    with the reason (it would never run) and :class:`ServiceUnavailable` says so."""
    try:
        send(str(job.id))
    except Exception as exc:
        if store.jobs.get(str(job.id)).state is not JobState.QUEUED:
            raise  # it was taken (an inline run): the job holds its own outcome
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        store.jobs.finish(str(job.id), error=f"not queued: {reason}")
        raise ServiceUnavailable(f"{job.kind.value} job {job.id} not queued: {reason}") from exc


def run_job(job_id: str, work: Callable[[JobOut], R], *, store: Store) -> R | None:
    """Run a queued job once with ``work``; a redelivery of a finished job does nothing.

    Our errors and ValueError fail the job (returns None); anything else fails it and is
    raised. On success the job's result is ``work``'s, as JSON.
    """
    job = store.jobs.start(job_id)
    if job is None:
        log.info("job %s already finished; skipping", job_id)
        return None
    try:
        result = work(job)
    except (MMLWError, ValueError) as exc:
        store.jobs.finish(job_id, error=str(exc))
        log.warning("%s job %s failed: %s", job.kind.value, job_id, exc)
        return None
    except Exception as exc:
        store.jobs.finish(job_id, error=f"{type(exc).__name__}: {exc}")
        raise
    store.jobs.finish(job_id, result=result.model_dump(mode="json"))
    return result


class InlineTrainer:
    """A dispatcher that runs train jobs at once in this process (``--inline`` on the
    CLI: no broker, no worker). It runs nothing else."""

    def __init__(self, store: Store, registry: ModelRegistry, settings: ModelSettings) -> None:
        self._store = store
        self._registry = registry
        self._settings = settings

    def train(self, job_id: str) -> None:
        from mmlw.services.training import run_train_job

        run_train_job(job_id, store=self._store, registry=self._registry, settings=self._settings)

    def predict(self, batch_id: int, version: int | None = None) -> None:
        raise ServiceUnavailable("scoring needs a worker; the inline trainer only trains")

    def predict_many(self, batch_ids: Sequence[int], version: int | None = None) -> None:
        raise ServiceUnavailable("scoring needs a worker; the inline trainer only trains")

    def notify(self, delivery_id: int) -> None:
        raise ServiceUnavailable("notifications need a worker; the inline trainer only trains")

    def tune(self, job_id: str) -> None:
        raise ServiceUnavailable("tune jobs need a worker; `mmlw tune` runs in this process")
