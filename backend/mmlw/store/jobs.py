"""Jobs: a record per train request, moved through queued -> running -> done by the task."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from mmlw.errors import NotFound
from mmlw.schemas.jobs import JobKind, JobOut, JobState
from mmlw.store.database import Database
from mmlw.store.tables import Job, utcnow

__all__ = ["JobsRepository"]


def _out(row: Job) -> JobOut:
    return JobOut(
        id=uuid.UUID(row.id),
        kind=JobKind(row.kind),
        machine_id=row.machine_id,
        state=JobState(row.state),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        request=row.request,
        result=row.result,
        error=row.error,
    )


class JobsRepository:
    def __init__(self, database: Database) -> None:
        self._db = database

    def create(self, kind: JobKind, machine_id: str, request: dict[str, Any]) -> JobOut:
        row = Job(
            id=str(uuid.uuid4()),
            kind=kind.value,
            machine_id=machine_id,
            state=JobState.QUEUED.value,
            created_at=utcnow(),
            request=request,
            attempts=0,
        )
        with self._db.session() as session:
            session.add(row)
        return _out(row)

    def get(self, job_id: str | uuid.UUID) -> JobOut:
        with self._db.session() as session:
            row = session.get(Job, str(job_id))
            if row is None:
                raise NotFound(f"job {job_id} not found")
            return _out(row)

    def list(self, machine_id: str | None = None, limit: int = 100) -> list[JobOut]:
        query = select(Job).order_by(Job.created_at.desc()).limit(limit)
        if machine_id is not None:
            query = query.where(Job.machine_id == machine_id)
        with self._db.session() as session:
            return [_out(row) for row in session.scalars(query)]

    def start(self, job_id: str) -> JobOut | None:
        """Mark running; None if the job is already finished (a redelivered task)."""
        with self._db.session() as session:
            row = session.get(Job, job_id, with_for_update=True)
            if row is None:
                raise NotFound(f"job {job_id} not found")
            if JobState(row.state).finished:
                return None
            row.state = JobState.RUNNING.value
            row.started_at = utcnow()
            row.attempts += 1
            return _out(row)

    def progress(self, job_id: str, done: int, total: int) -> None:
        """Record ``{"progress": {"done", "total"}}`` as a running job's partial result."""
        with self._db.session() as session:
            row = session.get(Job, job_id)
            if row is not None and row.state == JobState.RUNNING.value:
                row.result = {"progress": {"done": done, "total": total}}

    def finish(
        self, job_id: str, *, result: dict[str, Any] | None = None, error: str | None = None
    ) -> JobOut:
        with self._db.session() as session:
            row = session.get(Job, job_id, with_for_update=True)
            if row is None:
                raise NotFound(f"job {job_id} not found")
            row.state = (JobState.FAILED if error else JobState.SUCCEEDED).value
            row.finished_at = utcnow()
            row.result = result
            row.error = error
            return _out(row)
