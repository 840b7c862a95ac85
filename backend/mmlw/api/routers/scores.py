from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query, Response

from mmlw.api.deps import RegistryDep, StoreDep, row_limit
from mmlw.api.routers.readings import TOTAL_COUNT_HEADER, MaxPoints
from mmlw.schemas.readings import UtcBound
from mmlw.schemas.resources import ScoresOut, SensorContribution
from mmlw.schemas.shadow import ShadowComparisonOut
from mmlw.services.downsample import downsample_indices
from mmlw.services.rollups import RollupPlan, plan, scores_overview
from mmlw.services.shadow import shadow_comparison
from mmlw.store import Store
from mmlw.store.packing import us_to_datetimes
from mmlw.store.scores import StoredScores

router = APIRouter(tags=["scores"])

LATEST_MAX = 10_000
Role = Annotated[
    Literal["champion", "challenger"],
    Query(description="whose scores: the champion's, or the challenger's (shadow)"),
]


@router.get("/scores/latest")
def latest_scores(
    store: StoreDep,
    n: Annotated[int, Query(ge=1, le=LATEST_MAX, description="newest scores per machine")] = 1,
) -> list[ScoresOut]:
    """Every scored machine's newest ``n`` champion-scored readings (oldest first, no top
    sensors), by machine id: the state of all machines in one request and one query,
    where ``GET /machines/{id}/scores`` takes one of each per machine."""
    return [
        ScoresOut(
            machine_id=newest.machine_id,
            columns=newest.columns,
            timestamps=us_to_datetimes(newest.timestamps_us),
            scores=newest.scores.tolist(),
            thresholds=newest.thresholds.tolist(),
            flags=(newest.scores > newest.thresholds).tolist(),
            model_versions=newest.versions.tolist(),
            top_sensors=[[] for _ in range(len(newest))],
        )
        for newest in store.machines.newest_scores(n)
    ]


@router.get("/machines/{machine_id}/scores")
def get_scores(
    machine_id: str,
    store: StoreDep,
    response: Response,
    limit: Annotated[int, row_limit(10_000)],
    start: UtcBound | None = None,
    end: UtcBound | None = None,
    top: Annotated[int, Query(ge=0, le=32, description="top contributing sensors")] = 3,
    max_points: MaxPoints = None,
    role: Role = "champion",
) -> ScoresOut:
    """Champion (or, with ``role=challenger``, shadow) scores in ``[start, end)``, oldest
    first, each with the version that made it and its ``top`` contributing sensors. With
    ``max_points``: per time bucket the lowest and highest score and the highest flagged
    one, so no anomaly is lost.

    Long ranges come from the rollups, by the rule of ``GET
    /machines/{id}/readings`` (with ``max_points``: longer than two days, or reaching
    back before the oldest raw readings where the rollups hold older hours): the range is
    cut into ``(max_points - 2) // 3`` equal time buckets, each drawn as its lowest and
    highest score at the readings that had them (one point when that is one reading),
    both with the threshold and model version of the highest; the highest is flagged
    when any score of the bucket was, the lowest when all were. ``limit`` does not apply
    then, and ``top_sensors`` are empty (rollups keep no contributions). Contributions are
    kept for readings above their threshold and the worst of each batch
    (:mod:`mmlw.store.compact`); other readings have empty ``top_sensors``."""
    machine = store.machines.get(machine_id)
    if max_points is not None:
        overview = plan(
            store,
            machine_id,
            start,
            end,
            newest=machine.last_reading_at,
            buckets=max(1, (max_points - 2) // 3),
        )
        if overview is not None:
            return _from_rollups(machine_id, list(machine.columns), store, role, overview, response)
    parts = store.scores.query(
        machine_id, start, end, role=role, limit_batches=max(limit, 10_000), last_n=limit
    )
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
    response.headers[TOTAL_COUNT_HEADER] = str(
        store.scores.count_in_range(machine_id, start, end, role=role)
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
    if max_points is not None and len(keep_idx) > max_points:
        keep_idx = _downsampled(parts, timestamps, keep_idx, max_points)
    offset = 0
    for part in parts:
        n = len(part.scores)
        local = keep_idx[(keep_idx >= offset) & (keep_idx < offset + n)] - offset
        offset += n
        if local.size == 0:
            continue
        scores = part.scores[local]
        contributions = part.contributions[local]
        kept = ~np.isnan(contributions).any(axis=1)  # not kept: below threshold, not worst
        order = np.argsort(-contributions, axis=1)[:, :top]
        out.timestamps.extend(us_to_datetimes(part.timestamps_us[local]))
        out.scores.extend(scores.tolist())
        out.thresholds.extend([part.threshold] * len(local))
        out.flags.extend((scores > part.threshold).tolist())
        out.model_versions.extend([part.model_version] * len(local))
        out.top_sensors.extend(
            [SensorContribution(sensor=part.columns[j], contribution=float(row[j])) for j in ranks]
            if explained
            else []
            for row, ranks, explained in zip(contributions, order, kept, strict=True)
        )
    return out


@router.get("/machines/{machine_id}/scores/compare")
def compare_scores(
    machine_id: str,
    store: StoreDep,
    registry: RegistryDep,
    limit: Annotated[int, row_limit(10_000)],
    start: UtcBound | None = None,
    end: UtcBound | None = None,
    max_points: MaxPoints = None,
) -> ShadowComparisonOut:
    """Champion vs shadow challenger on the newest ``limit`` readings in ``[start, end)``
    that both scored: the two series aligned by reading and a summary (rows compared,
    flagged by each, disagreements, means, correlation) over all of them. With
    ``max_points`` the series are downsampled, keeping every bucket's extremes and a
    flagged reading. No challenger (or champion): empty, with the ``reason``."""
    return shadow_comparison(
        machine_id,
        store=store,
        registry=registry,
        start=start,
        end=end,
        limit=limit,
        max_points=max_points,
    )


def _from_rollups(
    machine_id: str,
    columns: list[str],
    store: Store,
    role: str,
    overview: RollupPlan,
    response: Response,
) -> ScoresOut:
    series = scores_overview(store, machine_id, role, overview)
    response.headers[TOTAL_COUNT_HEADER] = str(series.total)
    return ScoresOut(
        machine_id=machine_id,
        columns=columns,
        timestamps=us_to_datetimes(series.timestamps_us),
        scores=series.scores.tolist(),
        thresholds=series.thresholds.tolist(),
        flags=series.flags.tolist(),
        model_versions=series.versions.tolist(),
        top_sensors=[[] for _ in range(len(series.scores))],
    )


def _downsampled(
    parts: list[StoredScores], timestamps: np.ndarray, keep_idx: np.ndarray, max_points: int
) -> np.ndarray:
    """The rows of ``keep_idx`` (indices into the concatenated parts) worth drawing."""
    scores = np.concatenate([p.scores for p in parts])[keep_idx]
    thresholds = np.concatenate([np.full(len(p.scores), p.threshold) for p in parts])[keep_idx]
    times = timestamps[keep_idx]
    order = np.argsort(times, kind="stable")  # batches of one machine may overlap in time
    chosen = downsample_indices(
        times[order], scores[order], max_points, flagged=(scores > thresholds)[order]
    )
    return np.sort(keep_idx[order[chosen]])
