"""What the machine page reads from the API for one drawing: readings and scores over
the time range (downsampled by the API to what the plots can show), the champion model,
the machine's alerts, the contributions behind the selected moment and, when the machine
has a challenger, its shadow scores on the same readings as the champion's.

Readings, scores and the models are read in parallel; the contributions as soon as
the scores say which moment to explain, the shadow comparison as soon as the models say
there is a challenger.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mmlw.frontend.api_client import ApiClient, ApiError, Page
from mmlw.frontend.figure_style import empty_figure
from mmlw.frontend.figures import contributions_figure
from mmlw.frontend.timerange import parse_moment
from mmlw.schemas.alerts import AlertOut
from mmlw.schemas.resources import MachineOut, ModelVersionOut, ReadingsOut, ScoresOut
from mmlw.schemas.shadow import ShadowComparisonOut

__all__ = [
    "BUCKETS",
    "SCORE_BUCKETS",
    "MachineView",
    "default_moment",
    "explain_moment",
    "fetch_view",
    "has_challenger",
    "machine_alerts",
    "reading_buckets",
    "signature",
]

BUCKETS = 300  # time buckets of the sensor plots: one per ~4 px of a wide screen
SCORE_BUCKETS = 600  # the score plot is one trace: twice the detail costs little
MAX_POINTS = 100_000  # the API's cap on max_points
CHALLENGER = "challenger"  # the alias of the version that scores in shadow


@dataclass(frozen=True)
class MachineView:
    """Everything the machine page draws, read from the API in one go."""

    machine: MachineOut
    alerts: list[AlertOut]
    readings: Page[ReadingsOut]
    scores: Page[ScoresOut]
    champion: ModelVersionOut | None
    alerts_error: str | None = None
    explained: Any = None  # the contributions figure of the selected moment
    marked: datetime | None = None  # that moment (None: nothing to explain)
    shadow: ShadowComparisonOut | None = None  # None: the machine has no challenger


def signature(machine: MachineOut, alerts: list[AlertOut]) -> list[Any]:
    """What must change before a refresh re-draws the page."""
    return [
        machine.n_readings,
        machine.n_scored,
        machine.champion_version,
        [[a.id, a.state, a.acknowledged] for a in alerts],
    ]


def fetch_view(
    client: ApiClient,
    machine: MachineOut,
    alerts: list[AlertOut],
    start: datetime | None,
    end: datetime | None,
    alerts_error: str | None = None,
    selected: str | None = None,
) -> MachineView:
    """Readings, scores and the champion model in parallel (the API downsamples), and
    the contributions of ``selected`` (default: :func:`default_moment`) once the scores
    are in, while the readings are still on their way; the challenger's shadow scores
    over the same range once the models name one."""
    reading_points = _reading_points(machine)
    with ThreadPoolExecutor(max_workers=5) as pool:
        readings = pool.submit(
            client.readings, machine.id, start=start, end=end, max_points=reading_points
        )
        scores = pool.submit(
            client.scores, machine.id, start=start, end=end, max_points=3 * SCORE_BUCKETS + 2
        )
        models = pool.submit(client.models, machine.id) if machine.champion_version else None
        explained = pool.submit(
            lambda: explain_moment(
                client, machine.id, selected or default_moment(scores.result().item)
            )
        )
        shadow = pool.submit(
            lambda: (
                client.shadow(machine.id, start=start, end=end, max_points=3 * SCORE_BUCKETS + 2)
                if models is not None and has_challenger(models.result())
                else None
            )
        )
        champion = None
        if models is not None:
            champion = next(
                (v for v in models.result() if v.version == machine.champion_version), None
            )
        figure, marked = explained.result()
        return MachineView(
            machine,
            alerts,
            readings.result(),
            scores.result(),
            champion,
            alerts_error,
            explained=figure,
            marked=marked,
            shadow=shadow.result(),
        )


def has_challenger(versions: list[ModelVersionOut]) -> bool:
    """Whether one of the versions scores in shadow (so there is something to compare)."""
    return any(CHALLENGER in v.aliases for v in versions)


def _reading_points(machine: MachineOut) -> int:
    return min(MAX_POINTS, 2 * max(len(machine.columns), 1) * BUCKETS + 2)


def reading_buckets(view: MachineView) -> int | None:
    """The time buckets the API downsampled the readings in (None: all rows came)."""
    if view.readings.total <= len(view.readings.item.timestamps):
        return None
    return max(1, (_reading_points(view.machine) - 2) // (2 * max(len(view.machine.columns), 1)))


def default_moment(scores: ScoresOut) -> str | None:
    """The newest anomalous reading in range, else the newest of the highest-scored
    (contributions are kept for both: :mod:`mmlw.store.compact`)."""
    if not scores.timestamps:
        return None
    for moment, flagged in zip(reversed(scores.timestamps), reversed(scores.flags), strict=True):
        if flagged:
            return moment.isoformat()
    top = max(scores.scores)
    newest = max(i for i, score in enumerate(scores.scores) if score == top)
    return scores.timestamps[newest].isoformat()


def machine_alerts(client: ApiClient, machine_id: str) -> tuple[list[AlertOut], str | None]:
    """The machine's alerts, or none and why: the page still draws without them."""
    try:
        return client.alerts(machine_id=machine_id, limit=500), None
    except ApiError as exc:
        return [], f"alerts unavailable ({exc})"


def explain_moment(
    client: ApiClient, machine_id: str, moment: str | None
) -> tuple[Any, datetime | None]:
    """The contributions figure of the scored reading nearest ``moment`` and its time."""
    if moment is None:
        return empty_figure("no scored readings in this range"), None
    at = parse_moment(moment)
    try:
        near = client.scores(
            machine_id,
            start=at - timedelta(seconds=1),
            end=at + timedelta(seconds=1),
            top=32,
            limit=1_000,
        ).item
    except ApiError as exc:
        return empty_figure(str(exc)), None
    if not near.timestamps:
        return empty_figure("no score at the selected moment"), None
    explained = [k for k, top in enumerate(near.top_sensors) if top]
    if not explained:
        return empty_figure(
            "contributions are kept for readings above the threshold and the worst reading "
            "of each batch; pick one of those"
        ), None
    i = min(explained, key=lambda k: abs(near.timestamps[k] - at))
    figure = contributions_figure(
        near.top_sensors[i],
        at=near.timestamps[i],
        score=near.scores[i],
        threshold=near.thresholds[i],
    )
    return figure, near.timestamps[i]
