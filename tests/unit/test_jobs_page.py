"""The jobs page's outcome column for tune jobs (progress, then the best config)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from mmlw.frontend.pages.jobs import job_rows
from mmlw.schemas.jobs import JobKind, JobOut, JobState

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def tune_job(state: JobState, result: dict[str, Any]) -> JobOut:
    return JobOut(
        id=uuid.uuid4(),
        kind=JobKind.TUNE,
        machine_id="press-1",
        state=state,
        created_at=NOW,
        started_at=NOW,
        finished_at=NOW if state.finished else None,
        request={"grid": {"pca": {}}},
        result=result,
    )


def test_a_tune_job_shows_its_progress_then_its_best_config() -> None:
    running = tune_job(JobState.RUNNING, {"progress": {"done": 2, "total": 7}})
    ranked = {
        "n_configs": 2,
        "metric": "f1",
        "rows": [{"label": "lof", "error": "ValueError: x"}, {"label": "pca", "error": None}],
    }
    done = tune_job(JobState.SUCCEEDED, ranked)
    text = str(job_rows([running, done], NOW))
    assert "2 of 7 configs" in text
    assert "2 configs by f1: pca" in text
