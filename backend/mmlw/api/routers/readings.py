from __future__ import annotations

from typing import Annotated

import pandas as pd
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import StreamingResponse

from mmlw.api.deps import SettingsDep, StateDep, StoreDep, row_limit
from mmlw.api.readings_json import LARGE_READ_ROWS, stream_readings_json
from mmlw.schemas.readings import MachineId, ReadingsBatch, UtcBound
from mmlw.schemas.resources import Accepted, ReadingsOut
from mmlw.services.downsample import downsample_indices
from mmlw.services.rollups import plan, readings_overview

router = APIRouter(prefix="/machines/{machine_id}/readings", tags=["readings"])

TOTAL_COUNT_HEADER = "X-Total-Count"
MaxPoints = Annotated[
    int | None,
    Query(
        ge=10,
        le=100_000,
        description="downsample to at most this many rows, keeping every time bucket's "
        f"extremes; the {TOTAL_COUNT_HEADER} header says how many rows were in range",
    ),
]


@router.post("", status_code=status.HTTP_202_ACCEPTED)
def post_readings(
    machine_id: MachineId, batch: ReadingsBatch, state: StateDep, settings: SettingsDep
) -> Accepted:
    """Publish a readings batch (the AMQP contract) to the readings exchange.

    202 means the broker confirmed the message; storage and scoring follow
    asynchronously and idempotently on ``message_id``. 503 with ``Retry-After`` while the
    ingest queue is full (or the broker is unreachable): send the same body again later.
    """
    if batch.machine_id != machine_id:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"machine_id: body says {batch.machine_id!r}, path says {machine_id!r}",
        )
    if len(batch) > settings.broker.max_batch_readings:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"timestamps: {len(batch)} readings exceed {settings.broker.max_batch_readings}",
        )
    state.publisher.publish(batch)
    return Accepted(message_id=str(batch.message_id), machine_id=machine_id, readings=len(batch))


@router.get("", response_model=ReadingsOut)
def get_readings(
    machine_id: str,
    store: StoreDep,
    limit: Annotated[int, row_limit(10_000)],
    start: UtcBound | None = None,
    end: UtcBound | None = None,
    max_points: MaxPoints = None,
) -> StreamingResponse:
    """Stored readings in ``[start, end)``, oldest first, at most the newest ``limit``;
    with ``max_points``, each sensor's minimum and maximum per time bucket of those.

    Long ranges come from the rollups (per-minute and per-hour aggregates that outlive
    the raw readings). The rule: with ``max_points``, a range longer than two days (an
    open end runs to the newest reading, an open start from the oldest data kept), or
    one that starts before the oldest raw readings still stored where the rollups hold
    older hours, is cut into ``(max_points - 2) // (2 * sensors)`` equal time buckets,
    each drawn as two rows: every sensor's minimum, then its maximum (null where a sensor
    had no reading), at times inside the bucket. Minute rollups are read when a bucket
    is shorter than an hour and they reach back to the range's start, else hour
    rollups; readings not rolled up yet are aggregated the same way, so nothing is
    missing or counted twice. ``limit`` does not apply then, the range is widened to
    whole rollup periods (minutes or hours) and labels are null; ``X-Total-Count``
    counts the readings of the widened range (per bucket, those of its most counted
    sensor). Shorter ranges, and requests without ``max_points``, read raw readings."""
    machine = store.machines.get(machine_id)
    if max_points is not None:
        columns = list(machine.columns)
        overview = plan(
            store,
            machine_id,
            start,
            end,
            newest=machine.last_reading_at,
            buckets=max(1, (max_points - 2) // (2 * max(len(columns), 1))),
        )
        if overview is not None:
            values, total = readings_overview(store, machine_id, overview, columns)
            return StreamingResponse(
                stream_readings_json(machine_id, lambda: (values, None), large=False),
                media_type="application/json",
                headers={TOTAL_COUNT_HEADER: str(total)},
            )
    total = store.readings.count_in_range(machine_id, start, end)

    def read_window() -> tuple[pd.DataFrame, pd.Series | None]:
        values, labels = store.readings.window(machine_id, start, end, last_n=limit)
        if max_points is not None and len(values) > max_points:
            keep = downsample_indices(values.index.asi8, values.to_numpy(dtype=float), max_points)
            values = values.iloc[keep]
            labels = labels.iloc[keep] if labels is not None else None
        return values, labels

    return StreamingResponse(
        stream_readings_json(machine_id, read_window, large=min(limit, total) > LARGE_READ_ROWS),
        media_type="application/json",
        headers={TOTAL_COUNT_HEADER: str(total)},
    )
