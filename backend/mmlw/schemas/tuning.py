"""Configuration ranking (``mmlw tune``, ``POST .../tune``): the request and the ranked result."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import InitErrorDetails, ValidationError

from mmlw.schemas.param_bounds import param_errors
from mmlw.schemas.readings import MachineId, UtcDatetime

__all__ = ["ParamValue", "TuneOptions", "TuneRequest", "TuneResult", "TuneRow"]

ParamValue = float | int | str | bool | list[int] | None
DetectorName = str


class TuneOptions(BaseModel):
    """What to rank: a grid of detector configs, the search, the history window and split.

    ``grid`` maps a catalog detector to ``{param: [values...]}``; every combination of one
    detector's lists is a config (``{}`` = the defaults). ``search: random`` draws
    ``samples`` of those configs with ``seed``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    grid: dict[DetectorName, dict[str, list[ParamValue]]] = Field(min_length=1)
    search: Literal["grid", "random"] = "grid"
    samples: int | None = Field(default=None, ge=1, le=500, description="random search only")
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    train_fraction: float = Field(
        default=0.5, gt=0.05, lt=0.95, description="the oldest part fits and thresholds"
    )
    threshold_quantile: float | None = Field(default=None, gt=0.5, lt=1.0)
    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    last_n: int | None = Field(default=None, ge=10, le=5_000_000)
    min_readings: int = Field(default=100, ge=20)
    experiment: str = Field(default="mmlw-tuning", min_length=1, max_length=100)
    register_best: bool = Field(
        default=False, description="train the best config as a challenger (a train job)"
    )

    @field_validator("grid")
    @classmethod
    def _bounded(
        cls, grid: dict[DetectorName, dict[str, list[ParamValue]]]
    ) -> dict[DetectorName, dict[str, list[ParamValue]]]:
        """Every value of the grid within the bounds of mmlw.schemas.param_bounds
        (errors located at ``grid.<detector>.<param>.<index>``)."""
        errors: list[InitErrorDetails] = []
        for detector, params in grid.items():
            for name, values in params.items():
                for index, value in enumerate(values):
                    for error in param_errors(detector, {name: value}, (detector,)):
                        error["loc"] = (*error["loc"], index)
                        errors.append(error)
        if errors:
            raise ValidationError.from_exception_data("grid", errors)
        return grid

    @model_validator(mode="after")
    def _consistent(self) -> TuneOptions:
        if self.start and self.end and self.start >= self.end:
            raise ValueError("end: must be after start")
        if self.samples is not None and self.search != "random":
            raise ValueError("samples: only for search 'random'")
        return self


class TuneRequest(TuneOptions):
    """Tune options for one machine: the message of a tune job."""

    machine_id: MachineId


class TuneRow(BaseModel):
    """One config, ranked. Rates are fractions of the held-out readings."""

    model_config = ConfigDict(frozen=True)

    rank: int
    label: str
    detector: str
    params: dict[str, Any]
    metric: float | None = Field(description="the ranking metric (TuneResult.metric)")
    f1: float | None = None
    false_alarm_rate: float | None = None
    flag_rate: float | None = None
    fit_time_s: float | None = None
    score_time_s: float | None = None
    threshold: float | None = None
    run_id: str | None = None
    error: str | None = None


class TuneResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    machine_id: str
    metric: Literal["f1", "heldout_flag_rate"]
    labelled: bool
    n_train: int
    n_test: int
    n_configs: int
    features_computed: int = Field(description="feature frames computed (one per feature step)")
    features_requested: int = Field(description="feature frames the configs asked for")
    rows: list[TuneRow]
    parent_run_id: str | None = None
    report: str | None = Field(default=None, description="HTML chart written by the job")
    figure: dict[str, Any] | None = Field(default=None, description="plotly figure JSON")
    best_job_id: str | None = Field(default=None, description="train job of --register-best")
