"""Side-by-side bar panels (plotly), shared by model comparison and configuration ranking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["bar_panels"]


def bar_panels(
    labels: Sequence[str],
    panels: Sequence[tuple[str, Sequence[float | None]]],
    title: str,
    *,
    height: int = 420,
    hover: Sequence[str] | None = None,
) -> Any:
    """One row of bar charts, one per ``(title, values)`` panel, bars named by ``labels``
    (and ``hover`` texts, when the labels are short)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for t, _ in panels])
    for col, (_, values) in enumerate(panels, start=1):
        bar = go.Bar(x=list(labels), y=list(values), hovertext=hover, showlegend=False)
        figure.add_trace(bar, row=1, col=col)
    figure.update_layout(title=title, height=height)
    return figure
