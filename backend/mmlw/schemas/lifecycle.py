"""What the API says about model lifecycle: alias moves, promotions, which version when."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from mmlw.schemas.readings import UtcDatetime

__all__ = ["AliasEventOut", "AliasMove", "ComparisonStarted", "ModelAt"]


class AliasEventOut(BaseModel):
    id: int
    machine_id: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: UtcDatetime
    actor: str
    reason: str
    details: dict[str, Any]


class AliasMove(BaseModel):
    event: AliasEventOut
    gate: dict[str, Any] | None


class ModelAt(BaseModel):
    machine_id: str
    at: UtcDatetime
    scored_by: int | None = Field(description="the version whose stored score covers `at`")
    champion: int | None = Field(description="the version that was champion at `at`")


class ComparisonStarted(BaseModel):
    group: str
    job_ids: list[str]
