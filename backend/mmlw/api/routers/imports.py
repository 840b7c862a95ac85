"""History import over HTTP: a CSV or Parquet body, stored straight into the store.

SQL imports are left to the CLI (``mmlw import M --sql-url URL --query Q``): no
endpoint accepts a database URL or a query.
"""

from __future__ import annotations

import tempfile
from typing import IO, Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from mmlw.api.deps import StateDep
from mmlw.schemas.readings import MachineId
from mmlw.schemas.resources import ImportOut
from mmlw.services.import_sources import Source, csv_source, parquet_source
from mmlw.services.importing import (
    MAX_BATCH_ROWS,
    ImportOptions,
    ImportReport,
    import_readings,
    queue_scoring,
)

router = APIRouter(prefix="/machines/{machine_id}/imports", tags=["readings"])

CSV_TYPES = ("text/csv", "application/csv", "text/plain")
PARQUET_TYPES = ("application/vnd.apache.parquet", "application/x-parquet", "application/parquet")
_BODY = {
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
    },
}


class ImportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sep: Annotated[str | None, Field(min_length=1, max_length=1)] = None
    time_column: str | None = Field(default=None, description="default: datetime or timestamp")
    sensor: list[str] = Field(default_factory=list, description="sensor columns; none = numeric")
    label: str | None = Field(default=None, description="0/1 label column; default: anomaly")
    nan: Literal["reject", "drop"] = "reject"
    tz: str = Field(default="UTC", description="time zone of times without an offset")
    batch_rows: int = Field(default=1000, ge=1, le=MAX_BATCH_ROWS)
    score: bool = Field(default=True, description="queue new batches for the champion")


@router.post(
    "",
    openapi_extra={"requestBody": _BODY},
    responses={
        413: {"description": "the body is larger than MMLW_API__MAX_IMPORT_MB"},
        415: {"description": "the content type is neither CSV nor Parquet"},
    },
)
async def import_readings_file(
    machine_id: MachineId,
    request: Request,
    state: StateDep,
    query: Annotated[ImportQuery, Query()],
) -> ImportOut:
    """Import past readings from the body (``text/csv`` or
    ``application/vnd.apache.parquet``) into the store, in batches of ``batch_rows``.

    Idempotent: the same rows again store nothing (``new_rows`` 0). New batches are
    queued for scoring by the champion's version when there is one and ``score``.
    A 422 names the column and row of bad input.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in CSV_TYPES + PARQUET_TYPES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"content-type: {kind!r}; send text/csv or application/vnd.apache.parquet",
        )
    limit = int(state.settings.api.max_import_mb * 1024 * 1024)
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        size = 0
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise HTTPException(
                    status.HTTP_413_CONTENT_TOO_LARGE,
                    detail=f"body: larger than {state.settings.api.max_import_mb} MB",
                )
            spool.write(part)
        spool.seek(0)
        options = ImportOptions(
            machine_id=machine_id,
            time_column=query.time_column,
            sensors=tuple(query.sensor) or None,
            label_column=query.label,
            nan=query.nan,
            timezone=query.tz,
            batch_rows=query.batch_rows,
        )
        stream: IO[bytes] = spool  # type: ignore[assignment]
        source = (
            parquet_source(stream) if kind in PARQUET_TYPES else csv_source(stream, sep=query.sep)
        )
        report = await run_in_threadpool(_run, source, options, state, query.score)
    return ImportOut(**{name: getattr(report, name) for name in ImportOut.model_fields})


def _run(source: Source, options: ImportOptions, state: StateDep, score: bool) -> ImportReport:
    report = import_readings(source.chunks, options, state.store)
    if score and report.new_batch_ids:
        queue_scoring(report, registry=state.registry, dispatcher=state.dispatcher)
    return report
