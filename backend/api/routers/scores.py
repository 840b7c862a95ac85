from __future__ import annotations

from datetime import datetime
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query

from backend.api.deps import StoreDep
from backend.schemas.resources import ScoresOut, SensorContribution
from backend.store.packing import us_to_datetimes

router = APIRouter(prefix="/machines/{machine_id}/scores", tags=["scores"])


@router.get("")
def get_scores(
    machine_id: str,
    store: StoreDep,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1_000_000)] = 10_000,
    top: Annotated[int, Query(ge=0, le=32, description="top contributing sensors")] = 3,
) -> ScoresOut:
    """Champion scores in ``[start, end)``, oldest first, each with the version that made it
    and its ``top`` contributing sensors."""
    store.machines.get(machine_id)
    parts = store.scores.query(machine_id, start, end)
    out = ScoresOut(
        machine_id=machine_id,
        columns=parts[-1].columns if parts else [],
        timestamps=[],
        scores=[],
        thresholds=[],
        flags=[],
        model_versions=[],
        top_sensors=[],
    )
    if not parts:
        return out
    timestamps = np.concatenate([p.timestamps_us for p in parts])
    keep = np.ones(len(timestamps), dtype=bool)
    if start is not None:
        keep &= timestamps >= int(start.timestamp() * 1e6)
    if end is not None:
        keep &= timestamps < int(end.timestamp() * 1e6)
    keep_idx = np.flatnonzero(keep)[-limit:]
    offset = 0
    for part in parts:
        n = len(part.scores)
        local = keep_idx[(keep_idx >= offset) & (keep_idx < offset + n)] - offset
        offset += n
        if local.size == 0:
            continue
        scores = part.scores[local]
        contributions = part.contributions[local]
        order = np.argsort(-contributions, axis=1)[:, :top]
        out.timestamps.extend(us_to_datetimes(part.timestamps_us[local]))
        out.scores.extend(scores.tolist())
        out.thresholds.extend([part.threshold] * len(local))
        out.flags.extend((scores > part.threshold).tolist())
        out.model_versions.extend([part.model_version] * len(local))
        out.top_sensors.extend(
            [SensorContribution(sensor=part.columns[j], contribution=float(row[j])) for j in ranks]
            for row, ranks in zip(contributions, order, strict=True)
        )
    return out
