"""The readings batch: what a machine sends, over AMQP or HTTP.

A batch is frozen, forbids unknown fields and rejects NaN/inf, so a consumer either
gets a fully valid batch or an :class:`~backend.errors.InvalidMessage` naming the field.

>>> batch = ReadingsBatch.of_rows("pump-1", ["a", "b"],
...     ["2026-11-22T10:00:00Z"], [[1.0, 2.0]])
>>> batch.machine_id, len(batch)
('pump-1', 1)
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from backend.errors import InvalidMessage

__all__ = [
    "MACHINE_ID_PATTERN",
    "READINGS_SCHEMA",
    "MachineId",
    "ReadingsBatch",
    "UtcDatetime",
    "describe_validation_error",
    "parse_readings_message",
]

READINGS_SCHEMA: Final = "mmlw.readings/1"
MACHINE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
SENSOR_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_ .()/%-]{0,63}$"


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _iso_text(value: object) -> object:
    """Numbers are not times here: the schema says ISO 8601 (epoch numbers are ambiguous
    between seconds and milliseconds)."""
    if isinstance(value, int | float):
        raise ValueError("expected an ISO 8601 date-time string with a time zone")
    return value


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_to_utc)]
MachineId = Annotated[str, Field(pattern=MACHINE_ID_PATTERN)]
SensorName = Annotated[str, Field(pattern=SENSOR_PATTERN)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class ReadingsBatch(BaseModel):
    """One or more readings of one machine, column-aligned."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["mmlw.readings/1"] = Field(default=READINGS_SCHEMA, alias="schema")
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    machine_id: MachineId
    sent_at: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))
    columns: list[SensorName] = Field(min_length=1, max_length=256)
    timestamps: list[UtcDatetime] = Field(min_length=1)
    values: list[list[FiniteFloat]]
    labels: list[Literal[0, 1]] | None = None

    @model_validator(mode="after")
    def _aligned(self) -> ReadingsBatch:
        if len(set(self.columns)) != len(self.columns):
            raise ValueError("columns: names must be unique")
        n = len(self.timestamps)
        if len(self.values) != n:
            raise ValueError(f"values: {len(self.values)} rows for {n} timestamps")
        width = len(self.columns)
        for i, row in enumerate(self.values):
            if len(row) != width:
                raise ValueError(f"values[{i}]: {len(row)} values for {width} columns")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"labels: {len(self.labels)} labels for {n} timestamps")
        return self

    def __len__(self) -> int:
        return len(self.timestamps)

    @classmethod
    def of_rows(
        cls,
        machine_id: str,
        columns: Sequence[str],
        timestamps: Sequence[datetime | str],
        values: Sequence[Sequence[float]],
        labels: Sequence[int] | None = None,
    ) -> ReadingsBatch:
        return cls.model_validate(
            {
                "machine_id": machine_id,
                "columns": list(columns),
                "timestamps": list(timestamps),
                "values": [list(map(float, row)) for row in values],
                "labels": None if labels is None else [int(x) for x in labels],
            }
        )

    def to_wire(self) -> bytes:
        """UTF-8 JSON, the only encoding on the wire."""
        return self.model_dump_json(by_alias=True).encode()


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each failing field, e.g. ``values.3.1: Input should be finite``."""
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(parts)
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def parse_readings_message(body: bytes | str, max_readings: int | None = None) -> ReadingsBatch:
    """Decode and validate a wire message, or raise :class:`InvalidMessage`."""
    try:
        raw: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"body: not valid UTF-8 JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise InvalidMessage("body: expected a JSON object")
    if raw.get("schema") != READINGS_SCHEMA:
        raise InvalidMessage(f"schema: expected {READINGS_SCHEMA!r}, got {raw.get('schema')!r}")
    try:
        batch = ReadingsBatch.model_validate(raw)
    except ValidationError as exc:
        raise InvalidMessage(describe_validation_error(exc)) from None
    if max_readings is not None and len(batch) > max_readings:
        raise InvalidMessage(f"timestamps: {len(batch)} readings exceed the limit {max_readings}")
    return batch
