"""Small pieces every page uses: formatting, badges, tables, messages.

>>> fmt_duration(75.5), fmt_duration(None), fmt_number(0.000123456), fmt_number(None)
('1 min 16 s', '-', '0.000123', '-')
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from dash import html

__all__ = [
    "badge",
    "fmt_age",
    "fmt_duration",
    "fmt_number",
    "fmt_time",
    "graph_config",
    "message",
    "table",
]

Cell = Any  # a string or a Dash component


def fmt_time(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def fmt_age(moment: datetime | None, now: datetime) -> str:
    """How long ago, roughly ("12 s ago", "3 min ago", "in 2 h" for future times)."""
    if moment is None:
        return "-"
    seconds = (now - moment).total_seconds()
    text = fmt_duration(abs(seconds), coarse=True)
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def fmt_duration(seconds: float | None, *, coarse: bool = False) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s" if coarse or seconds >= 10 else f"{seconds:.2f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min" if coarse else f"{minutes} min {rest} s"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"


def fmt_number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def badge(text: str, kind: str | None = None) -> html.Span:
    """A coloured label; ``kind`` picks the colour (a status, state or severity)."""
    slug = (kind or text).replace(" ", "-").lower()
    return html.Span(text, className=f"badge badge-{slug}")


def message(text: str, kind: str = "info") -> html.Div:
    return html.Div(text, className=f"message message-{kind}", role="status")


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    *,
    row_ids: Sequence[str] | None = None,
    row_classes: Sequence[str] | None = None,
    empty: str = "nothing to show",
    class_name: str = "",
) -> html.Table | html.P:
    """A plain HTML table; ``row_ids`` become ``data-id`` attributes (handy in tests)."""
    if not rows:
        return html.P(empty, className="empty")
    body = []
    for i, row in enumerate(rows):
        data: dict[str, Any] = {"data-id": row_ids[i]} if row_ids is not None else {}
        body.append(
            html.Tr(
                [html.Td(cell) for cell in row],
                className=row_classes[i] if row_classes is not None else None,
                **data,
            )
        )
    return html.Table(
        [html.Thead(html.Tr([html.Th(h) for h in header])), html.Tbody(body)],
        className=f"table {class_name}".strip(),
    )


def graph_config(*, static: bool = False) -> Any:
    """dcc.Graph options: no plotly logo; sparklines are static images of data."""
    if static:
        return {"staticPlot": True, "displayModeBar": False}
    return {"displaylogo": False}
