"""Model comparison: train several detector configs on the same window of one machine
as parallel train jobs (one group), then show fit time, score time and metrics side by
side. Versions are registered without an alias: promote the one you want."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mmlw.errors import InvalidInput
from mmlw.messaging.dispatch import Dispatcher
from mmlw.schemas.jobs import JobOut, JobState, TrainOptions, TrainRequest
from mmlw.schemas.readings import describe_validation_error
from mmlw.services.jobs import create_training_job
from mmlw.store import Store

__all__ = [
    "CompareRequest",
    "CompareRow",
    "comparison_figure",
    "comparison_rows",
    "start_comparison",
]


class DetectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    detector: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    params: dict[str, float | int | str | bool | list[int] | None] = Field(default_factory=dict)


class CompareRequest(BaseModel):
    """The configs to compare and the one window they are all trained on."""

    model_config = ConfigDict(extra="forbid")

    configs: list[DetectorConfig] = Field(min_length=2, max_length=20)
    window: TrainOptions = Field(default_factory=TrainOptions, description="detector ignored")


@dataclass(frozen=True)
class CompareRow:
    job_id: str
    detector: str
    params: dict[str, Any]
    state: JobState
    version: int | None
    fit_time_s: float | None
    score_time_s: float | None
    threshold: float | None
    train_flag_rate: float | None
    metrics: dict[str, float]
    error: str | None


def start_comparison(
    machine_id: str, request: CompareRequest, *, store: Store, dispatcher: Dispatcher
) -> tuple[str, list[JobOut]]:
    """Validate every config first (nothing is queued if one is bad), then queue them."""
    group = f"cmp-{uuid.uuid4().hex[:12]}"
    base = request.window.model_dump(exclude={"detector", "params", "alias", "group", "reason"})
    try:
        requests = [
            TrainRequest(
                machine_id=machine_id,
                detector=config.detector,
                params=config.params,
                alias="none",
                group=group,
                reason=f"comparison {group}",
                **base,
            )
            for config in request.configs
        ]
    except ValidationError as exc:  # e.g. a parameter over its bound
        raise InvalidInput("configs", describe_validation_error(exc)) from None
    jobs = [create_training_job(r, store=store) for r in requests]
    for job in jobs:
        dispatcher.train(str(job.id))
    return group, jobs


def comparison_rows(group: str, store: Store) -> list[CompareRow]:
    jobs = [j for j in store.jobs.list(limit=1000) if j.request.get("group") == group]
    rows = []
    for job in sorted(jobs, key=lambda j: j.created_at):
        result = job.result or {}
        metrics = dict(result.get("metrics") or {})
        rows.append(
            CompareRow(
                job_id=str(job.id),
                detector=str(job.request.get("detector")),
                params=dict(job.request.get("params") or {}),
                state=job.state,
                version=result.get("version"),
                fit_time_s=metrics.get("fit_time_s"),
                score_time_s=metrics.get("score_time_s"),
                threshold=metrics.get("threshold"),
                train_flag_rate=metrics.get("train_flag_rate"),
                metrics=metrics,
                error=job.error,
            )
        )
    return rows


def comparison_figure(rows: list[CompareRow]) -> Any:
    """Fit time, score time and training flag rate per config, side by side (plotly)."""
    from mmlw.services.charts import bar_panels

    done = [r for r in rows if r.state == JobState.SUCCEEDED]
    return bar_panels(
        [f"{r.detector} v{r.version}" for r in done],
        [
            ("fit time (s)", [r.fit_time_s for r in done]),
            ("score time (s)", [r.score_time_s for r in done]),
            ("flag rate on training", [r.train_flag_rate for r in done]),
        ],
        f"model comparison ({len(done)} of {len(rows)} trained)",
    )
