"""What every figure of the dashboard shares: colours, margins, a trimmed plotly
template, time axes in UTC and the switch to WebGL for long series.

>>> from datetime import UTC
>>> float(epoch_ms([datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)])[0])
1000.0
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

__all__ = [
    "CLOSED_ALERT_FILL",
    "FLAG_COLOR",
    "MARGIN",
    "OPEN_ALERT_FILL",
    "SCORE_COLOR",
    "SELECTED_COLOR",
    "SENSOR_COLOR",
    "THRESHOLD_COLOR",
    "WEBGL_FROM",
    "empty_figure",
    "epoch_ms",
    "scatter_type",
    "template",
    "utc",
]

WEBGL_FROM = 10_000
SCORE_COLOR = "#1f77b4"
THRESHOLD_COLOR = "#d62728"
FLAG_COLOR = "#d62728"
SENSOR_COLOR = "#444444"
OPEN_ALERT_FILL = "rgba(214, 39, 40, 0.15)"
CLOSED_ALERT_FILL = "rgba(127, 127, 127, 0.15)"
SELECTED_COLOR = "#ff7f0e"
MARGIN = {"l": 60, "r": 20, "t": 30, "b": 40}


def empty_figure(message: str, *, height: int = 260) -> go.Figure:
    """A blank figure saying why there is nothing to draw."""
    figure = go.Figure()
    figure.add_annotation(
        text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font_size=14
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    figure.update_layout(height=height, margin=MARGIN, template=template())
    return figure


def epoch_ms(values: Sequence[datetime]) -> np.ndarray:
    """Milliseconds since the Unix epoch (float64): what plotly.js takes on a date axis,
    sent as a compact binary array instead of one date string per point."""
    index = pd.DatetimeIndex(values)
    if index.tz is None:
        index = index.tz_localize("UTC")
    return index.as_unit("ns").asi8 / 1e6


def utc(values: Sequence[datetime]) -> pd.DatetimeIndex:
    """Naive UTC times: plotly.js has no time zones, so we draw (and label) UTC."""
    index = pd.DatetimeIndex(values)
    return index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index


@cache
def template() -> go.layout.Template:
    """plotly's "plotly_white" cut to what 2-D scatter and bar figures use: the same look,
    a fraction of the template to validate here and to send and apply in the browser."""
    white = pio.templates["plotly_white"]
    layout = {k: v for k, v in white.layout.to_plotly_json().items() if k in _TEMPLATE_LAYOUT}
    data = {k: v for k, v in white.data.to_plotly_json().items() if k in _TEMPLATE_TRACES}
    return go.layout.Template(layout=layout, data=data)


_TEMPLATE_TRACES = ("scatter", "scattergl", "bar")
_TEMPLATE_LAYOUT = (
    "annotationdefaults",
    "autotypenumbers",
    "colorway",
    "font",
    "hoverlabel",
    "hovermode",
    "paper_bgcolor",
    "plot_bgcolor",
    "shapedefaults",
    "title",
    "xaxis",
    "yaxis",
)


def scatter_type(n: int) -> type[go.Scatter] | type[go.Scattergl]:
    """SVG scatter for ``n`` points, WebGL from :data:`WEBGL_FROM` on (SVG draws faster
    in a browser without a GPU, until the number of points makes it the slower one)."""
    return go.Scattergl if n >= WEBGL_FROM else go.Scatter
