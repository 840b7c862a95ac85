from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import RegistryDep, StoreDep
from backend.schemas.resources import ModelVersionOut

router = APIRouter(tags=["models"])


@router.get("/machines/{machine_id}/models")
def list_models(machine_id: str, store: StoreDep, registry: RegistryDep) -> list[ModelVersionOut]:
    """Registered versions of the machine's model, with aliases and run metrics."""
    store.machines.get(machine_id)
    return registry.versions(machine_id)
