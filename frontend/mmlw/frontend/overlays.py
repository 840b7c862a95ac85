"""What the time-series figures draw over their traces: alert periods shaded, and the
vertical line at the selected moment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import plotly.graph_objects as go

from mmlw.frontend.figure_style import CLOSED_ALERT_FILL, OPEN_ALERT_FILL, SELECTED_COLOR, utc
from mmlw.schemas.alerts import AlertOut

__all__ = ["AlertPeriod", "alert_periods", "selection_marker", "shade"]


@dataclass(frozen=True)
class AlertPeriod:
    """When an alert was pending or firing: ``end`` is None while it is still open."""

    start: datetime
    end: datetime | None
    label: str

    @property
    def is_open(self) -> bool:
        return self.end is None


def alert_periods(alerts: Sequence[AlertOut]) -> list[AlertPeriod]:
    """One period per alert, oldest first: from its start to its resolution (or open)."""
    periods = [
        AlertPeriod(
            start=a.started_at,
            end=a.resolved_at if a.state == "resolved" else None,
            label=f"{a.severity}: {a.rule} (#{a.id})",
        )
        for a in alerts
    ]
    return sorted(periods, key=lambda p: p.start)


def shade(figure: go.Figure, periods: Sequence[AlertPeriod], *, until: datetime) -> None:
    """One rectangle per period over the whole height (every panel shares the x axis)."""
    for period in periods:
        start, end = utc([period.start, period.end or until])
        figure.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            x0=start,
            x1=max(start, end),
            y0=0,
            y1=1,
            fillcolor=OPEN_ALERT_FILL if period.is_open else CLOSED_ALERT_FILL,
            line_width=0,
            layer="below",
            name=period.label,
        )


def selection_marker(selected: datetime | None) -> dict[str, Any]:
    """The vertical line at the selected moment: always ``layout.shapes[0]`` of the score
    and sensor figures (hidden when nothing is selected), so a page can move it alone."""
    at = utc([selected])[0] if selected is not None else None
    return {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": at,
        "x1": at,
        "y0": 0,
        "y1": 1,
        "visible": at is not None,
        "line": {"color": SELECTED_COLOR, "width": 1.5, "dash": "dot"},
        "name": "selected",
    }
