"""Alert rules and notifiers, from YAML (``configs/alerts.yaml``), validated on load.

Durations are seconds or strings like ``"90s"``, ``"5m"``, ``"4h"``. ``${NAME}`` in a
string value is replaced by the environment variable ``NAME`` at load time (so webhook
secrets need not live in the file); an unset variable is an error naming it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    model_validator,
)

from mmlw.alerts.engine import RuleTiming

__all__ = [
    "DEFAULT_RULES_FILE",
    "AlertRule",
    "AlertsConfig",
    "EmailNotifier",
    "FlagsCondition",
    "NoDataCondition",
    "NotifierConfig",
    "WebhookNotifier",
    "load_alerts_config",
    "parse_duration",
]

DEFAULT_RULES_FILE = Path(__file__).with_name("default_rules.yaml")

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_duration(value: Any) -> float:
    """``30`` / ``"30s"`` / ``"5m"`` / ``"1.5h"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 30s, 5m or 4h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"expected a duration like 30s, 5m or 4h, got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FlagsCondition(_Strict):
    """At least ``k`` of the machine's last ``n`` scored readings have a score above
    ``multiple`` x their threshold (``multiple: 1`` = flagged anomalous)."""

    kind: Literal["scores"] = "scores"
    k: int = Field(default=1, ge=1)
    n: int = Field(default=1, ge=1, le=100_000)
    multiple: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _k_within_n(self) -> FlagsCondition:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) cannot exceed n ({self.n})")
        return self


class NoDataCondition(_Strict):
    """No reading received from the machine for ``seconds``."""

    kind: Literal["no_data"]
    seconds: Duration = Field(gt=0)


Condition = Annotated[FlagsCondition | NoDataCondition, Field(discriminator="kind")]


class AlertRule(_Strict):
    name: Name
    machines: str = Field(default="*", description="machine id or shell-style pattern")
    condition: Condition
    for_s: Duration = Field(default=0.0, alias="for", description="pending period")
    keep_firing_for: Duration = 0.0
    repeat_interval: Duration = Field(default=4 * 3600.0, gt=0)
    severity: Literal["info", "warning", "critical"] = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    notify: list[Name] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def applies_to(self, machine_id: str) -> bool:
        return fnmatchcase(machine_id, self.machines)

    @property
    def timing(self) -> RuleTiming:
        return RuleTiming(
            for_s=self.for_s,
            keep_firing_for_s=self.keep_firing_for,
            repeat_interval_s=self.repeat_interval,
        )


class _Delivery(_Strict):
    max_attempts: int = Field(default=5, ge=1, le=50)
    backoff: Duration = Field(default=2.0, description="first retry delay; doubles each time")
    timeout: Duration = Field(default=10.0, gt=0)


class EmailNotifier(_Delivery):
    type: Literal["email"]
    to: list[str] = Field(min_length=1)
    subject_prefix: str = "[MMLW]"


class WebhookNotifier(_Delivery):
    type: Literal["webhook"]
    url: HttpUrl
    secret: SecretStr = Field(description="HMAC-SHA256 key for X-MMLW-Signature")
    tolerance: Duration = Field(default=300.0, description="receivers reject older timestamps")


NotifierConfig = Annotated[EmailNotifier | WebhookNotifier, Field(discriminator="type")]


class AlertsConfig(_Strict):
    notifiers: dict[Name, NotifierConfig] = Field(default_factory=dict)
    rules: list[AlertRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> AlertsConfig:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"rules: duplicate rule name {rule.name!r}")
            seen.add(rule.name)
            unknown = [n for n in rule.notify if n not in self.notifiers]
            if unknown:
                raise ValueError(
                    f"rules.{rule.name}.notify: unknown notifier(s) {unknown}; "
                    f"defined: {sorted(self.notifiers)}"
                )
        return self

    def rule(self, name: str) -> AlertRule | None:
        return next((r for r in self.rules if r.name == name), None)

    def rules_for(self, machine_id: str) -> list[AlertRule]:
        return [r for r in self.rules if r.applies_to(machine_id)]


def load_alerts_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> AlertsConfig:
    """Read and validate a rules file (the packaged defaults when ``path`` is None).

    Raises ValueError naming the file and the offending field.
    """
    import yaml

    from mmlw.schemas.readings import describe_validation_error

    path = Path(path) if path is not None else DEFAULT_RULES_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{path}: cannot read alert rules: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a mapping with 'notifiers' and 'rules'")
    try:
        expanded = _expand_env(raw, os.environ if environ is None else environ)
        return AlertsConfig.model_validate(expanded)
    except ValidationError as exc:
        raise ValueError(f"{path}: {describe_validation_error(exc)}") from exc
    except KeyError as exc:
        raise ValueError(f"{path}: environment variable {exc.args[0]} is not set") from exc


def _expand_env(value: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _ENV.sub(lambda m: environ[m.group(1)], value)
    if isinstance(value, Mapping):
        return {k: _expand_env(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, environ) for v in value]
    return value
