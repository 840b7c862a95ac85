"""What the API returns about machines, readings, scores and model versions."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from mmlw.schemas.readings import UtcDatetime

__all__ = [
    "Accepted",
    "ImportOut",
    "MachineOut",
    "ModelVersionOut",
    "ReadingsOut",
    "ScoresOut",
    "SensorContribution",
]


class Accepted(BaseModel):
    """A readings batch the broker confirmed (``POST .../readings``, 202)."""

    message_id: str
    machine_id: str
    readings: int


class MachineOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    columns: list[str]
    first_seen: UtcDatetime
    last_seen: UtcDatetime
    last_reading_at: UtcDatetime | None
    n_readings: int
    n_scored: int
    champion_version: int | None


class ReadingsOut(BaseModel):
    """Column-aligned readings; ``labels`` holds None where a batch carried no labels,
    ``values`` None where a batch lacked that sensor."""

    machine_id: str
    columns: list[str]
    timestamps: list[UtcDatetime]
    values: list[list[float | None]]
    labels: list[int | None]


class SensorContribution(BaseModel):
    sensor: str
    contribution: float


class ScoresOut(BaseModel):
    """Stored scores of one machine, oldest first; each names the model version."""

    machine_id: str
    columns: list[str]
    timestamps: list[UtcDatetime]
    scores: list[float]
    thresholds: list[float]
    flags: list[bool]
    model_versions: list[int]
    top_sensors: list[list[SensorContribution]]


class ModelVersionOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    version: int
    aliases: list[str]
    run_id: str | None
    created_at: UtcDatetime
    detector: str | None
    threshold: float | None
    metrics: dict[str, float]
    tags: dict[str, str]


class ImportOut(BaseModel):
    """What a history import stored (see README, History import)."""

    machine_id: str
    columns: list[str]
    label_column: str | None
    rows: int
    batches: int
    new_rows: int
    new_batches: int
    dropped_rows: int
    ignored_columns: list[str]
    queued_for_scoring: int
    scoring_version: int | None
