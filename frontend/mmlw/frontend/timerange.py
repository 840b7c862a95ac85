"""Time ranges of the machine page: the range picker, zoom windows and clicked moments.

Ranges count back from the machine's newest reading, not from the wall clock, so a
replayed file or a sped-up simulator shows its data too. Plotly reports zoom windows and
clicked points as naive UTC strings (we draw UTC); these helpers turn them into
timezone-aware datetimes.

>>> from datetime import UTC, datetime
>>> window_for("1h", datetime(2026, 11, 22, 10, tzinfo=UTC))
(datetime.datetime(2026, 11, 22, 9, 0, tzinfo=datetime.timezone.utc), None)
>>> zoom_window({"xaxis.range[0]": "2026-11-22 09:30", "xaxis.range[1]": "2026-11-22 09:45"})
('2026-11-22T09:30:00+00:00', '2026-11-22T09:45:00+00:00')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

__all__ = [
    "DEFAULT_RANGE",
    "RANGES",
    "RESET",
    "parse_moment",
    "window_for",
    "zoom_window",
]

RANGES: Final[dict[str, tuple[str, timedelta | None]]] = {
    "15m": ("last 15 min", timedelta(minutes=15)),
    "1h": ("last hour", timedelta(hours=1)),
    "6h": ("last 6 h", timedelta(hours=6)),
    "24h": ("last 24 h", timedelta(hours=24)),
    "7d": ("last 7 days", timedelta(days=7)),
    "all": ("everything", None),
}
DEFAULT_RANGE: Final = "1h"
RESET: Final = "reset"
_RANGE_KEY = re.compile(r"^xaxis\d*\.range(\[(?P<i>[01])\])?$")
_AUTORANGE_KEY = re.compile(r"^xaxis\d*\.autorange$")


def window_for(range_key: str, newest: datetime | None) -> tuple[datetime | None, None]:
    """``(start, end)`` of a named range ending at the newest reading (end open)."""
    if range_key not in RANGES:
        raise ValueError(f"range: unknown {range_key!r}; known: {list(RANGES)}")
    span = RANGES[range_key][1]
    if span is None or newest is None:
        return None, None
    return newest - span, None


def parse_moment(value: str | datetime) -> datetime:
    """A plotly x value (naive UTC string or datetime) as an aware UTC datetime."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def zoom_window(relayout: Mapping[str, Any] | None) -> tuple[str, str] | str | None:
    """What a plotly ``relayoutData`` event means for the shown window.

    ``(start, end)`` ISO strings after a zoom or pan on any x axis, :data:`RESET` after
    a double-click (autorange), None when the event is not about the x axis.
    """
    if not relayout:
        return None
    bounds: dict[int, Any] = {}
    for key, value in relayout.items():
        if _AUTORANGE_KEY.match(key) and value:
            return RESET
        match = _RANGE_KEY.match(key)
        if not match:
            continue
        if match.group("i") is None and isinstance(value, list | tuple) and len(value) == 2:
            bounds = {0: value[0], 1: value[1]}
        elif match.group("i") is not None:
            bounds[int(match.group("i"))] = value
    if 0 not in bounds or 1 not in bounds:
        return None
    start, end = sorted((parse_moment(str(bounds[0])), parse_moment(str(bounds[1]))))
    return start.isoformat(), end.isoformat()
