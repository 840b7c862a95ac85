from __future__ import annotations

from fastapi import APIRouter, status

from mmlw.api.deps import StateDep
from mmlw.schemas.jobs import JobOut
from mmlw.schemas.readings import MachineId
from mmlw.schemas.tuning import TuneOptions, TuneRequest
from mmlw.services.tuning import submit_tuning

router = APIRouter(tags=["jobs"])


@router.post("/machines/{machine_id}/tune", status_code=status.HTTP_202_ACCEPTED)
def tune(machine_id: MachineId, options: TuneOptions, state: StateDep) -> JobOut:
    """Queue a tune job: rank a grid of detector configs on the machine's stored history.

    ``GET /jobs/{id}`` shows progress while it runs and the ranked table, MLflow parent run
    and plotly figure when done; ``register_best`` also queues a train job for the best
    config as challenger (``best_job_id``). A bad grid is a 422 naming the field.
    """
    request = TuneRequest(machine_id=machine_id, **options.model_dump())
    return submit_tuning(request, store=state.store, dispatcher=state.dispatcher)
