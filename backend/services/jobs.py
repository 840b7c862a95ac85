"""Submitting work: the same function behind ``POST .../train`` and ``mmlw train``."""

from __future__ import annotations

from backend.detectors.catalog import build_detector
from backend.messaging.dispatch import Dispatcher
from backend.schemas.jobs import JobKind, JobOut, TrainRequest
from backend.store import Store

__all__ = ["create_training_job", "submit_training"]


def create_training_job(request: TrainRequest, *, store: Store) -> JobOut:
    """Check the request against the catalog and the store, then record a queued job."""
    build_detector(request.detector, request.params)
    store.machines.get(request.machine_id)
    return store.jobs.create(JobKind.TRAIN, request.machine_id, request.model_dump(mode="json"))


def submit_training(request: TrainRequest, *, store: Store, dispatcher: Dispatcher) -> JobOut:
    """Record a queued train job and enqueue it; the job id is the handle to poll."""
    job = create_training_job(request, store=store)
    dispatcher.train(str(job.id))
    return job
