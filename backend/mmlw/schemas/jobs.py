"""Train jobs: the request, and the job record every process can read."""

from __future__ import annotations

import enum
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from mmlw.schemas.param_bounds import check_params
from mmlw.schemas.readings import MachineId, UtcDatetime

# The detector users get without naming one (``mmlw train``, the API, the demo, stream
# evaluation): a name on the wire contract, so it lives here; ``mmlw.detectors.default``
# re-exports it for the domain code.
DEFAULT_DETECTOR = "adaptive"

__all__ = [
    "DEFAULT_DETECTOR",
    "JobKind",
    "JobOut",
    "JobState",
    "TrainOptions",
    "TrainRequest",
    "TrainResult",
]


class JobKind(enum.StrEnum):
    TRAIN = "train"
    TUNE = "tune"  # configuration ranking (mmlw.services.tuning)


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


class TrainOptions(BaseModel):
    """How to train: detector, its parameters, the window and the threshold.

    The window is ``[start, end)``; ``last_n`` keeps only its newest readings.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    detector: str = Field(default=DEFAULT_DETECTOR, pattern=r"^[a-z][a-z0-9_]{0,40}$")
    params: dict[str, float | int | str | bool | list[int] | None] = Field(
        default_factory=dict,
        description="lists of integers for e.g. lags and windows; parameters that size the "
        "model are bounded (mmlw.schemas.param_bounds)",
    )
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    last_n: int | None = Field(default=None, ge=10, le=5_000_000)
    threshold_quantile: float | None = Field(default=None, gt=0.5, lt=1.0)
    min_readings: int = Field(default=50, ge=10)
    alias: Literal["auto", "champion", "challenger", "none"] = Field(
        default="auto",
        description="auto: champion if the machine has none, else challenger (shadow)",
    )
    exclude_flagged: bool = Field(
        default=False,
        description="leave out readings the champion flagged or that fall inside alerts",
    )
    reason: str = Field(default="trained", max_length=200, description="for the alias history")
    group: str | None = Field(
        default=None, max_length=64, description="jobs compared side by side share a group"
    )

    @field_validator("params")
    @classmethod
    def _bounded(
        cls, params: dict[str, float | int | str | bool | list[int] | None], info: ValidationInfo
    ) -> dict[str, float | int | str | bool | list[int] | None]:
        detector = info.data.get("detector")
        if isinstance(detector, str):
            check_params(detector, params)
        return params

    @model_validator(mode="after")
    def _window(self) -> TrainOptions:
        if self.start and self.end and self.start >= self.end:
            raise ValueError("end: must be after start")
        return self


class TrainRequest(TrainOptions):
    """Train options for one machine: the message of a train job."""

    machine_id: MachineId


class TrainResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    model_name: str
    version: int
    run_id: str
    aliases: list[str]
    threshold: float
    n_readings: int
    metrics: dict[str, float]
    config_hash: str = ""
    dataset_hash: str = ""
    same_as: int | None = Field(
        default=None, description="an earlier version with the same config on the same data"
    )


class JobOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    kind: JobKind
    machine_id: str
    state: JobState
    created_at: UtcDatetime
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    request: dict[str, Any]
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
