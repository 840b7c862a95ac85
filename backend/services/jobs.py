"""Submitting work: the same function behind ``POST .../train`` and ``mmlw train``."""

from __future__ import annotations

from backend.detectors.catalog import DETECTORS
from backend.messaging.dispatch import Dispatcher
from backend.schemas.jobs import JobKind, JobOut, TrainRequest
from backend.store import Store

__all__ = ["submit_training"]


def submit_training(request: TrainRequest, *, store: Store, dispatcher: Dispatcher) -> JobOut:
    """Record a queued train job and enqueue it; the job id is the handle to poll."""
    if request.detector not in DETECTORS:
        raise ValueError(f"detector: unknown {request.detector!r}; choose from {sorted(DETECTORS)}")
    store.machines.get(request.machine_id)
    job = store.jobs.create(JobKind.TRAIN, request.machine_id, request.model_dump(mode="json"))
    dispatcher.train(str(job.id))
    return job
