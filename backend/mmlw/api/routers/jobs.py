from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, status

from mmlw.api.deps import StateDep, StoreDep, row_limit
from mmlw.schemas.jobs import JobOut, TrainOptions, TrainRequest
from mmlw.schemas.readings import MachineId
from mmlw.services.jobs import submit_training

router = APIRouter(tags=["jobs"])


@router.post("/machines/{machine_id}/train", status_code=status.HTTP_202_ACCEPTED)
def train(machine_id: MachineId, options: TrainOptions, state: StateDep) -> JobOut:
    """Queue a train job; poll ``GET /jobs/{id}`` for its state and result."""
    request = TrainRequest(machine_id=machine_id, **options.model_dump())
    return submit_training(request, store=state.store, dispatcher=state.dispatcher)


@router.get("/jobs")
def list_jobs(
    store: StoreDep,
    limit: Annotated[int, row_limit(100, 1000)],
    machine_id: str | None = None,
) -> list[JobOut]:
    return store.jobs.list(machine_id, limit)


@router.get("/jobs/{job_id}")
def get_job(job_id: uuid.UUID, store: StoreDep) -> JobOut:
    return store.jobs.get(job_id)
