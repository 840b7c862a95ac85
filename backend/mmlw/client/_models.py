"""Jobs (train, tune, wait) and the model lifecycle (versions, promote, roll back, history)."""

from __future__ import annotations

import builtins
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from mmlw.client._http import Session, clean
from mmlw.client.errors import JobFailed, JobTimeout
from mmlw.schemas.jobs import JobOut, JobState, TrainOptions
from mmlw.schemas.lifecycle import AliasEventOut, AliasMove, ComparisonStarted, ModelAt
from mmlw.schemas.resources import ModelVersionOut
from mmlw.schemas.tuning import TuneOptions

__all__ = ["Jobs", "Models"]

JobRef = JobOut | uuid.UUID | str


def _options(options: BaseModel | Mapping[str, Any] | None) -> dict[str, Any]:
    """A request body: a model's fields as set, or a mapping as given."""
    if isinstance(options, BaseModel):
        return options.model_dump(mode="json", exclude_unset=True)
    return dict(options or {})


class Jobs:
    def __init__(self, session: Session) -> None:
        self._s = session

    def train(
        self, machine_id: str, options: TrainOptions | Mapping[str, Any] | None = None
    ) -> JobOut:
        """Queue a train job (202); :meth:`wait` for its version in ``result``."""
        return self._s.post(JobOut, f"/machines/{machine_id}/train", _options(options))

    def tune(self, machine_id: str, options: TuneOptions | Mapping[str, Any]) -> JobOut:
        """Queue a tune job: rank a grid of detector configs on the machine's history."""
        return self._s.post(JobOut, f"/machines/{machine_id}/tune", _options(options))

    def list(self, machine_id: str | None = None, limit: int = 100) -> list[JobOut]:
        return self._s.get(list[JobOut], "/jobs", machine_id=machine_id, limit=limit)

    def get(self, job: JobRef) -> JobOut:
        return self._s.get(JobOut, f"/jobs/{_job_id(job)}")

    def wait(self, job: JobRef, timeout: float = 300.0, poll_s: float = 0.25) -> JobOut:
        """Poll until the job finished: the succeeded job, or :class:`JobFailed` (its
        ``job`` has the error); :class:`JobTimeout` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            current = self.get(job)
            if current.state is JobState.SUCCEEDED:
                return current
            if current.state is JobState.FAILED:
                raise JobFailed(current)
            if time.monotonic() >= deadline:
                raise JobTimeout(current, timeout)
            time.sleep(poll_s)


def _job_id(job: JobRef) -> str:
    return str(job.id if isinstance(job, JobOut) else job)


class Models:
    def __init__(self, session: Session) -> None:
        self._s = session

    def list(self, machine_id: str) -> list[ModelVersionOut]:
        """Registered versions with aliases, detector, threshold and run metrics."""
        return self._s.get(list[ModelVersionOut], f"/machines/{machine_id}/models")

    def promote(
        self,
        machine_id: str,
        *,
        by: str,
        version: int | None = None,
        gated: bool = True,
        reason: str | None = None,
    ) -> AliasMove:
        """The challenger (or ``version``) becomes champion; a refusal of the gate is a
        :class:`~mmlw.client.errors.Conflict` whose ``reason`` is the gate's."""
        body = clean(by=by, version=version, gated=gated, reason=reason)
        return self._s.post(AliasMove, f"/machines/{machine_id}/models/promote", body)

    def rollback(
        self, machine_id: str, version: int, *, by: str, reason: str | None = None
    ) -> AliasMove:
        body = clean(by=by, version=version, reason=reason)
        return self._s.post(AliasMove, f"/machines/{machine_id}/models/rollback", body)

    def gate(self, machine_id: str, version: int | None = None) -> dict[str, Any]:
        """How the challenger (or ``version``) compares with the champion; nothing moves."""
        return self._s.get(dict[str, Any], f"/machines/{machine_id}/models/gate", version=version)

    def history(self, machine_id: str, alias: str | None = None) -> builtins.list[AliasEventOut]:
        """Every alias move, oldest first: who, when, why, from -> to."""
        path = f"/machines/{machine_id}/models/history"
        return self._s.get(builtins.list[AliasEventOut], path, alias=alias)

    def at(self, machine_id: str, at: datetime) -> ModelAt:
        """Which version scored the reading at ``at`` (aware), and which was champion."""
        return self._s.get(ModelAt, f"/machines/{machine_id}/models/at", at=at)

    def compare(self, machine_id: str, request: Mapping[str, Any]) -> ComparisonStarted:
        """Train several configs on one window as parallel jobs (no alias moves)."""
        return self._s.post(ComparisonStarted, f"/machines/{machine_id}/compare", dict(request))

    def comparison(self, group: str) -> builtins.list[dict[str, Any]]:
        return self._s.get(builtins.list[dict[str, Any]], f"/comparisons/{group}")
