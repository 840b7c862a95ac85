"""The cells of an import, one column at a time: times and numbers parsed, every bad
cell refused with an ``InvalidInput`` that names the column and its data row (1-based,
counted from ``first_row``, the data row of the column's first cell)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from mmlw.errors import InvalidInput

__all__ = ["NAT", "has_numbers", "parse_numbers", "parse_times_us", "time_zone"]

#: an empty time cell, as :func:`parse_times_us` returns it (NaT is int64's minimum)
NAT = np.iinfo(np.int64).min
_NAN_TEXT = ("nan", "na", "n/a", "null", "none", "inf", "-inf", "infinity", "-infinity")


def _is_number(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def has_numbers(column: pd.Series) -> bool:
    """A default sensor: numbers, or text of which some cells are numbers (so that a bad
    cell is reported, not the column silently left out); never booleans or dates."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
        return False
    if _is_number(column):
        return True
    return bool(pd.to_numeric(column.astype("string"), errors="coerce").notna().any())


def parse_times_us(column: pd.Series, name: str, zone: ZoneInfo, first_row: int) -> np.ndarray:
    """Microseconds since the epoch (UTC); ``NAT`` where the cell is empty."""
    if _is_number(column) and column.notna().any():
        raise InvalidInput(name, "numbers are not times; expected ISO 8601 date-times")
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column
    else:
        text = column.astype("string")
        try:
            parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        except ValueError:  # mixed UTC offsets
            parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
        unparsed = parsed.isna() & text.notna() & (text.str.strip() != "")
        if unparsed.any():
            row = int(np.argmax(unparsed.to_numpy()))
            raise InvalidInput(
                name,
                f"row {first_row + row}: cannot parse {text.iloc[row]!r} as an ISO 8601 date-time",
            )
    try:
        if parsed.dt.tz is None:
            parsed = parsed.dt.tz_localize(zone, ambiguous="raise", nonexistent="raise")
    except (ValueError, TypeError) as exc:
        raise InvalidInput(name, f"local time in {zone.key}: {exc}") from None
    micros = pd.DatetimeIndex(parsed.dt.tz_convert("UTC")).as_unit("us").asi8
    return np.asarray(micros, dtype=np.int64)  # NaT is int64's minimum, i.e. NAT


def parse_numbers(column: pd.Series, name: str, first_row: int) -> np.ndarray:
    """Float64 values; NaN where empty; a ``ValueError`` naming a non-numeric cell."""
    if pd.api.types.is_numeric_dtype(column):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    numbers = pd.to_numeric(column, errors="coerce")
    text = column.astype("string").str.strip()
    wrong = numbers.isna() & text.notna() & (text != "") & ~text.str.lower().isin(_NAN_TEXT)
    if wrong.any():
        row = int(np.argmax(wrong.to_numpy()))
        raise InvalidInput(name, f"row {first_row + row}: {column.iloc[row]!r} is not a number")
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (naive times are taken in it); ValueError if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput("timezone", f"unknown time zone {name!r}") from None
