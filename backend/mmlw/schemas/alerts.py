"""What the API says about alerts, silences and notification deliveries."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mmlw.schemas.readings import UtcDatetime
from mmlw.schemas.resources import SensorContribution

__all__ = [
    "AckRequest",
    "AlertOut",
    "DeliveryAttemptOut",
    "DeliveryOut",
    "DeliveryStatus",
    "ResolveRequest",
    "SilenceIn",
    "SilenceOut",
]

AlertStateName = Literal["pending", "firing", "resolved"]


class DeliveryStatus(StrEnum):
    """Where one notification is; the values are what the store holds."""

    QUEUED = "queued"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"  # the alert was acknowledged or silenced
    SKIPPED = "skipped"  # the channel is off

    @property
    def finished(self) -> bool:
        """No further attempt will be made (a redelivered notify task does nothing)."""
        return self not in (DeliveryStatus.QUEUED, DeliveryStatus.RETRYING)


SILENCE_LABELS = ("machine_id", "rule", "severity")


class AlertOut(BaseModel):
    """One alert instance of a (rule, machine) group."""

    id: int
    rule: str
    machine_id: str
    severity: str
    state: AlertStateName
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_at: UtcDatetime | None
    ack_comment: str | None
    silenced: bool
    started_at: UtcDatetime
    fired_at: UtcDatetime | None
    resolved_at: UtcDatetime | None
    resolved_by: str | None
    last_active_at: UtcDatetime
    last_notified_at: UtcDatetime | None
    last_score: float | None
    threshold: float | None
    model_version: int | None
    top_sensors: list[SensorContribution]
    labels: dict[str, str]
    summary: str
    dashboard_url: str = ""

    @property
    def is_open(self) -> bool:
        return self.state != "resolved"


class _Actor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=128, description="who does it")
    comment: str | None = Field(default=None, max_length=2000)


class AckRequest(_Actor):
    pass


class ResolveRequest(_Actor):
    pass


class SilenceIn(BaseModel):
    """Mute notifications of alerts whose labels match every matcher (shell-style
    patterns over ``machine_id``, ``rule``, ``severity`` and the rule's labels)."""

    model_config = ConfigDict(extra="forbid")

    matchers: dict[str, str] = Field(min_length=1)
    starts_at: UtcDatetime | None = Field(default=None, description="default: now")
    ends_at: UtcDatetime
    created_by: str = Field(min_length=1, max_length=128)
    comment: str | None = Field(default=None, max_length=2000)

    @field_validator("matchers")
    @classmethod
    def _non_empty(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if not name or not pattern:
                raise ValueError("matcher names and patterns cannot be empty")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> SilenceIn:
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class SilenceOut(BaseModel):
    id: int
    matchers: dict[str, str]
    starts_at: UtcDatetime
    ends_at: UtcDatetime
    created_by: str
    comment: str | None
    created_at: UtcDatetime
    active: bool


class DeliveryAttemptOut(BaseModel):
    attempt: int
    at: UtcDatetime
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: float


class DeliveryOut(BaseModel):
    """One notification of one alert event through one notifier, with every attempt."""

    id: int
    alert_id: int
    notifier: str
    channel: Literal["email", "webhook"]
    event: Literal["firing", "repeat", "resolved"]
    status: DeliveryStatus
    created_at: UtcDatetime
    delivered_at: UtcDatetime | None
    attempts: list[DeliveryAttemptOut]
    last_error: str | None
