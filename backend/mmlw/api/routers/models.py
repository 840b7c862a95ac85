"""Model versions and their lifecycle: promotion (gated), rollback, alias history, and
which version scored a machine at a given time."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from mmlw.api.deps import VERSION_MAX, RegistryDep, SettingsDep, StateDep, StoreDep
from mmlw.errors import NotFound
from mmlw.registry.base import CHALLENGER, CHAMPION
from mmlw.schemas.lifecycle import AliasEventOut, AliasMove, ComparisonStarted, ModelAt
from mmlw.schemas.readings import UtcDatetime
from mmlw.schemas.resources import ModelVersionOut
from mmlw.services.comparison import (
    CompareRequest,
    comparison_figure,
    comparison_rows,
    start_comparison,
)
from mmlw.services.lifecycle import gate_report, promote, rollback

router = APIRouter(tags=["models"])


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(
        default=None, ge=1, le=VERSION_MAX, description="default: the challenger"
    )
    gated: bool = Field(default=True, description="False skips the promotion gate")
    by: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="promoted", max_length=500)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=VERSION_MAX)
    by: str = Field(min_length=1, max_length=128)
    reason: str = Field(default="rolled back", max_length=500)


@router.get("/machines/{machine_id}/models")
def list_models(machine_id: str, store: StoreDep, registry: RegistryDep) -> list[ModelVersionOut]:
    """Registered versions of the machine's model, with aliases and run metrics."""
    store.machines.get(machine_id)
    return registry.versions(machine_id)


@router.post("/machines/{machine_id}/models/promote")
def promote_model(
    machine_id: str,
    request: PromoteRequest,
    store: StoreDep,
    registry: RegistryDep,
    settings: SettingsDep,
) -> AliasMove:
    """Make the challenger (or ``version``) champion; 409 with the gate's reason if it
    does not pass the promotion gate (``MMLW_MODELS__PROMOTION__*``)."""
    store.machines.get(machine_id)
    event, report = promote(
        machine_id,
        store=store,
        registry=registry,
        settings=settings.models.promotion,
        actor=request.by,
        reason=request.reason,
        version=request.version,
        gated=request.gated,
    )
    return AliasMove(event=event, gate=asdict(report) if report is not None else None)


@router.post("/machines/{machine_id}/models/rollback")
def rollback_model(
    machine_id: str, request: RollbackRequest, store: StoreDep, registry: RegistryDep
) -> AliasMove:
    """Make an earlier version champion again, at once."""
    store.machines.get(machine_id)
    event = rollback(
        machine_id,
        request.version,
        store=store,
        registry=registry,
        actor=request.by,
        reason=request.reason,
    )
    return AliasMove(event=event, gate=None)


@router.get("/machines/{machine_id}/models/gate")
def check_gate(
    machine_id: str,
    store: StoreDep,
    registry: RegistryDep,
    settings: SettingsDep,
    version: Annotated[int | None, Query(ge=1, le=VERSION_MAX)] = None,
) -> dict[str, Any]:
    """How the challenger (or ``version``) compares with the champion; nothing moves."""
    store.machines.get(machine_id)
    if version is None:
        version = registry.alias_version(machine_id, CHALLENGER)
        if version is None:
            raise NotFound(f"machine {machine_id!r} has no challenger")
    report = gate_report(
        machine_id, version, store=store, registry=registry, settings=settings.models.promotion
    )
    return asdict(report)


@router.get("/machines/{machine_id}/models/history")
def alias_history(
    machine_id: str, store: StoreDep, alias: str | None = None
) -> list[AliasEventOut]:
    """Every alias move of the machine, oldest first: who, when, why, from -> to."""
    store.machines.get(machine_id)
    return store.alias_history.list(machine_id, alias)


@router.get("/machines/{machine_id}/models/at")
def model_at(machine_id: str, at: UtcDatetime, store: StoreDep) -> ModelAt:
    """Which model scored the machine's reading at ``at``, and which was champion then."""
    store.machines.get(machine_id)
    return ModelAt(
        machine_id=machine_id,
        at=at,
        scored_by=store.scores.version_at(machine_id, at),
        champion=store.alias_history.version_at(machine_id, CHAMPION, at),
    )


@router.post("/machines/{machine_id}/compare", status_code=status.HTTP_202_ACCEPTED)
def compare_models(machine_id: str, request: CompareRequest, state: StateDep) -> ComparisonStarted:
    """Train several detector configs on the same window as parallel jobs (no alias
    moves); read the side-by-side result at ``GET /comparisons/{group}``."""
    group, jobs = start_comparison(
        machine_id, request, store=state.store, dispatcher=state.dispatcher
    )
    return ComparisonStarted(group=group, job_ids=[str(j.id) for j in jobs])


@router.get("/comparisons/{group}")
def get_comparison(group: str, store: StoreDep) -> list[dict[str, Any]]:
    """One row per config: state, version, fit time, score time, threshold, metrics."""
    rows = comparison_rows(group, store)
    if not rows:
        raise NotFound(f"comparison {group} not found")
    return [asdict(r) for r in rows]


@router.get("/comparisons/{group}/figure")
def get_comparison_figure(group: str, store: StoreDep) -> dict[str, Any]:
    """The side-by-side plotly figure, as plotly JSON."""
    rows = comparison_rows(group, store)
    if not rows:
        raise NotFound(f"comparison {group} not found")
    return json.loads(comparison_figure(rows).to_json())  # type: ignore[no-any-return]
