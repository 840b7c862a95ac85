"""A train job whose hand-off to the queue fails is failed with the reason, not left
``queued`` forever; a job that was taken (run inline) keeps its own outcome."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from mmlw.errors import ServiceUnavailable
from mmlw.schemas.jobs import JobKind, JobState, TrainRequest
from mmlw.services.jobs import enqueue_job, submit_training
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine

DOWN = "cannot reach the broker at amqp://127.0.0.1:5672// (connection refused)"


class BrokerDown:
    """A Dispatcher whose broker cannot be reached."""

    def train(self, job_id: str) -> None:
        raise ServiceUnavailable(DOWN)

    def predict(self, batch_id: int, version: int | None = None) -> None: ...

    def predict_many(self, batch_ids: Sequence[int], version: int | None = None) -> None: ...

    def score(self, batches: Sequence[tuple[int, str]]) -> None: ...

    def notify(self, delivery_id: int) -> None: ...

    def tune(self, job_id: str) -> None: ...


@pytest.fixture
def machine(sqlite_store: Store) -> str:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    sqlite_store.readings.add(SyntheticMachine("mill-1", seed=3, start=start).read(60).to_batch())
    return "mill-1"


def test_a_job_that_cannot_be_queued_is_failed_with_the_reason(
    sqlite_store: Store, machine: str
) -> None:
    request = TrainRequest(machine_id=machine, detector="pca")
    with pytest.raises(ServiceUnavailable, match="not queued: cannot reach the broker") as caught:
        submit_training(request, store=sqlite_store, dispatcher=BrokerDown())
    (job,) = sqlite_store.jobs.list(machine)
    assert str(job.id) in str(caught.value)
    assert job.state is JobState.FAILED and job.error == f"not queued: {DOWN}"
    assert job.finished_at is not None


def test_a_job_that_was_taken_keeps_its_own_outcome(sqlite_store: Store, machine: str) -> None:
    request = TrainRequest(machine_id=machine, detector="pca")
    job = sqlite_store.jobs.create(JobKind.TRAIN, machine, request.model_dump(mode="json"))

    def run_then_crash(job_id: str) -> None:
        sqlite_store.jobs.start(job_id)
        sqlite_store.jobs.finish(job_id, error="RuntimeError: boom")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        enqueue_job(job, run_then_crash, store=sqlite_store)
    assert sqlite_store.jobs.get(job.id).error == "RuntimeError: boom"
