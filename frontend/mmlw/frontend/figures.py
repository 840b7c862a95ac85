"""The dashboard's plotly figures: pure functions from API data to ``go.Figure``.

Nothing here talks to the API or to Dash; every function takes the API's own response
models (``mmlw.schemas``) and returns a figure, so each one is unit-tested alone. What
they share (colours, template, UTC time axes, WebGL above
:data:`~mmlw.frontend.figure_style.WEBGL_FROM` points) is in :mod:`.figure_style`; what
they draw over the traces (alert periods, the selected moment) in :mod:`.overlays`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mmlw.frontend.figure_style import (
    FLAG_COLOR,
    SCORE_COLOR,
    SENSOR_COLOR,
    THRESHOLD_COLOR,
    empty_figure,
    epoch_ms,
    scatter_type,
    template,
    utc,
)
from mmlw.frontend.overlays import AlertPeriod, selection_marker, shade
from mmlw.schemas.resources import ReadingsOut, ScoresOut, SensorContribution
from mmlw.schemas.shadow import ShadowComparisonOut
from mmlw.services.downsample import downsample_indices

__all__ = [
    "CHALLENGER_COLOR",
    "MAX_SENSOR_MARKERS",
    "challenger_trace",
    "contributions_figure",
    "flagged_values",
    "score_figure",
    "sensor_figure",
    "sparkline",
]

MAX_SENSOR_MARKERS = 200
CHALLENGER_COLOR = "#9467bd"
# Room for what plotly would otherwise push the margins out for (legend above the plot,
# two-line date ticks and an axis title below): a push means drawing the figure twice.
_SCORE_MARGIN = {"l": 70, "r": 20, "t": 40, "b": 72}
_SENSOR_MARGIN = {"l": 60, "r": 20, "t": 46, "b": 72}
_CONTRIBUTIONS_MARGIN = {"l": 110, "r": 20, "t": 60, "b": 56}


def sparkline(scores: ScoresOut, *, height: int = 48, width: int = 180) -> go.Figure:
    """A small score-vs-threshold line without axes (SVG: many fit on one page)."""
    if not scores.scores:
        return empty_figure("no scores", height=height)
    times = epoch_ms(scores.timestamps)
    flags = np.asarray(scores.flags, dtype=bool)
    values = np.asarray(scores.scores, dtype=float)
    figure = go.Figure(
        [
            go.Scatter(
                x=times,
                y=values,
                mode="lines",
                line={"color": SCORE_COLOR, "width": 1},
                name="score",
            ),
            go.Scatter(
                x=times,
                y=np.asarray(scores.thresholds, dtype=float),
                mode="lines",
                line={"color": THRESHOLD_COLOR, "width": 1, "dash": "dot", "shape": "hv"},
                name="threshold",
            ),
            go.Scatter(
                x=times[flags],
                y=values[flags],
                mode="markers",
                marker={"color": FLAG_COLOR, "size": 3},
                name="anomalous",
            ),
        ]
    )
    figure.update_xaxes(visible=False, type="date")
    figure.update_yaxes(visible=False)
    figure.update_layout(
        height=height,
        width=width,
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        showlegend=False,
        template=template(),
        hovermode=False,
    )
    return figure


def score_figure(
    scores: ScoresOut,
    periods: Sequence[AlertPeriod] = (),
    *,
    selected: datetime | None = None,
    log_y: bool = False,
    revision: str = "",
    shadow: ShadowComparisonOut | None = None,
) -> go.Figure:
    """Anomaly score over time, its threshold (a step per model version), anomalous
    readings marked, alert periods shaded and the selected moment as a vertical line.

    ``shadow``: the challenger's score on the readings both scored, dashed, after the
    champion's traces (which keep their order: the first three are always the same)."""
    if not scores.scores:
        return empty_figure("no scores in this range (no model yet, or no readings)")
    times = epoch_ms(scores.timestamps)
    values = np.asarray(scores.scores, dtype=float)
    flags = np.asarray(scores.flags, dtype=bool)
    scatter = scatter_type(len(values))
    figure = go.Figure(
        [
            scatter(
                x=times,
                y=values,
                mode="lines",
                name="score",
                line={"color": SCORE_COLOR, "width": 1},
                customdata=np.asarray(scores.model_versions),
                hovertemplate="%{x}<br>score %{y:.3g}<br>model v%{customdata}<extra></extra>",
            ),
            scatter(
                x=times,
                y=np.asarray(scores.thresholds, dtype=float),
                mode="lines",
                name="threshold",
                line={"color": THRESHOLD_COLOR, "width": 1, "dash": "dash", "shape": "hv"},
                hovertemplate="threshold %{y:.3g}<extra></extra>",
            ),
            scatter(
                x=times[flags],
                y=values[flags],
                mode="markers",
                name="anomalous",
                marker={"color": FLAG_COLOR, "size": 5},
                hovertemplate="%{x}<br>anomalous: %{y:.3g}<extra></extra>",
            ),
        ]
    )
    if shadow is not None and shadow.timestamps:
        figure.add_trace(challenger_trace(shadow))
    figure.add_shape(selection_marker(selected))
    shade(figure, periods, until=scores.timestamps[-1])
    figure.update_yaxes(title_text="score", type="log" if log_y else "linear")
    figure.update_xaxes(title_text="time (UTC)", type="date")
    figure.update_layout(
        height=300,
        margin=_SCORE_MARGIN,
        template=template(),
        legend={"orientation": "h", "y": 1.12, "x": 0},
        uirevision=revision or None,
        hovermode="closest",
    )
    return figure


def challenger_trace(shadow: ShadowComparisonOut) -> go.Scatter | go.Scattergl:
    """The shadow challenger's score, dashed, named for its version; hover says whether
    it flags the reading and whether the champion agrees."""
    label = f"challenger v{shadow.challenger_version} (shadow)"
    agree = np.asarray(shadow.champion_flags) == np.asarray(shadow.challenger_flags)
    verdict = [
        ("flags" if flagged else "passes") + ("" if same else ", champion disagrees")
        for flagged, same in zip(shadow.challenger_flags, agree, strict=True)
    ]
    return scatter_type(len(shadow.timestamps))(
        x=epoch_ms(shadow.timestamps),
        y=np.asarray(shadow.challenger_scores, dtype=float),
        mode="lines",
        name=label,
        line={"color": CHALLENGER_COLOR, "width": 1, "dash": "dash"},
        customdata=np.asarray(verdict, dtype=object),
        hovertemplate=f"%{{x}}<br>{label}: %{{y:.3g}} (%{{customdata}})<extra></extra>",
    )


def flagged_values(
    readings: ReadingsOut, scores: ScoresOut, *, max_markers: int | None = MAX_SENSOR_MARKERS
) -> tuple[np.ndarray, np.ndarray]:
    """Where the anomalous readings sit on each drawn sensor trace.

    Returns the flagged times (:func:`epoch_ms`) and an array ``(flagged, sensors)`` of
    the traces' values there, interpolated in time: exact where both series hold the
    reading, on the drawn line where the series were downsampled. With ``max_markers``,
    the readings' time span is cut into that many slots and each slot keeps only its
    highest-scoring anomaly (SVG markers are what costs a browser most to draw).
    """
    flags = np.asarray(scores.flags, dtype=bool)
    at = epoch_ms(scores.timestamps)[flags]
    worst = np.asarray(scores.scores, dtype=float)[flags]
    columns = len(readings.columns)
    if not readings.timestamps or at.size == 0:
        return at, np.empty((at.size, columns))
    x = epoch_ms(readings.timestamps)
    inside = (at >= x[0]) & (at <= x[-1])
    at, worst = at[inside], worst[inside]
    if max_markers is not None and at.size > max_markers:
        slot = np.minimum(((at - x[0]) / max(x[-1] - x[0], 1.0) * max_markers).astype(int),
                          max_markers - 1)  # fmt: skip
        order = np.lexsort((-worst, slot))
        first = np.unique(slot[order], return_index=True)[1]
        at = np.sort(at[order[first]])
    table = np.asarray(readings.values, dtype=float)
    out = np.column_stack([np.interp(at, x, table[:, j]) for j in range(columns)])
    return at, out


def sensor_figure(
    readings: ReadingsOut,
    scores: ScoresOut,
    periods: Sequence[AlertPeriod] = (),
    *,
    selected: datetime | None = None,
    revision: str = "",
    buckets: int | None = None,
) -> go.Figure:
    """One panel per sensor on a shared time axis, anomalous readings marked on each trace,
    alert periods shaded across all panels.

    ``buckets``: the readings were downsampled in that many time buckets (each sensor's
    minimum and maximum per bucket, the rows of all sensors together); each panel then
    draws only its own sensor's extremes of those buckets, the same picture in a fraction
    of the points, with the anomalous readings' markers on that drawn line."""
    if not readings.timestamps:
        return empty_figure("no readings in this range")
    columns = readings.columns
    times = epoch_ms(readings.timestamps)
    table = np.asarray(readings.values, dtype=float)
    flagged_at, flagged = flagged_values(readings, scores)
    lines = [_own_extremes(times, table[:, j], buckets) for j in range(len(columns))]
    if buckets is not None and flagged_at.size:
        flagged = np.column_stack([np.interp(flagged_at, x, y) for x, y in lines])
    scatter = scatter_type(max(len(x) for x, _ in lines))
    figure = make_subplots(
        rows=len(columns),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=min(0.04, 0.3 / max(len(columns), 1)),
        subplot_titles=columns,
    )
    for j, name in enumerate(columns):
        figure.add_trace(
            scatter(
                x=lines[j][0],
                y=lines[j][1],
                mode="lines",
                name=name,
                line={"color": SENSOR_COLOR, "width": 1},
                hovertemplate=f"{name}: %{{y:.4g}}<br>%{{x}}<extra></extra>",
                showlegend=False,
            ),
            row=j + 1,
            col=1,
        )
        figure.add_trace(
            scatter(
                x=flagged_at,
                y=flagged[:, j],
                mode="markers",
                name="anomalous",
                legendgroup="anomalous",
                marker={"color": FLAG_COLOR, "size": 4},
                hovertemplate=f"anomalous<br>{name}: %{{y:.4g}}<extra></extra>",
                showlegend=j == 0,
            ),
            row=j + 1,
            col=1,
        )
    figure.add_shape(selection_marker(selected))
    shade(figure, periods, until=readings.timestamps[-1])
    figure.update_xaxes(type="date")
    figure.update_xaxes(title_text="time (UTC)", row=len(columns), col=1)
    figure.update_annotations(font_size=12)
    figure.update_layout(
        height=90 + 120 * len(columns),
        margin=_SENSOR_MARGIN,
        template=template(),
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        uirevision=revision or None,
        hovermode="closest",
    )
    return figure


def contributions_figure(
    contributions: Sequence[SensorContribution],
    *,
    at: datetime | None = None,
    score: float | None = None,
    threshold: float | None = None,
) -> go.Figure:
    """Per-sensor contributions to one reading's score, largest on top."""
    if not contributions:
        return empty_figure("select a moment on the score plot to see what drove it")
    ordered = sorted(contributions, key=lambda c: c.contribution)
    figure = go.Figure(
        go.Bar(
            x=[c.contribution for c in ordered],
            y=[c.sensor for c in ordered],
            orientation="h",
            marker_color=SCORE_COLOR,
            hovertemplate="%{y}: %{x:.4g}<extra></extra>",
        )
    )
    title = "contributions"
    if at is not None:
        title += f" at {utc([at])[0]:%Y-%m-%d %H:%M:%S} UTC"
    if score is not None:
        title += f"<br>score {score:.3g}"
        if threshold is not None:
            title += f" vs threshold {threshold:.3g}"
            title += " (anomalous)" if score > threshold else ""
    figure.update_layout(
        title={"text": title, "font": {"size": 13}},
        height=max(220, 60 + 26 * len(ordered)),
        margin=_CONTRIBUTIONS_MARGIN,
        template=template(),
        xaxis_title="contribution to the score",
    )
    return figure


def _own_extremes(
    times: np.ndarray, column: np.ndarray, buckets: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The points of one sensor's trace: all, or its own extremes of ``buckets`` buckets
    (the first and last point included, so the buckets are the ones downsampling used)."""
    if buckets is None:
        return times, column
    keep = downsample_indices(times, column, 2 * buckets + 2)
    return times[keep], column[keep]
