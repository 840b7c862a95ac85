"""Times at the edges of ``datetime``: what a query's range bound (``UtcBound``) and a
stored or looked-up time (``UtcDatetime``) accept, and that they refuse the rest with a
ValidationError naming the field instead of letting ``OverflowError`` or a naive time
reach the database (each was a 500 before)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, ValidationError

from mmlw.schemas.readings import UtcBound, UtcDatetime


class RangeQuery(BaseModel):
    start: UtcBound | None = None


class Lookup(BaseModel):
    at: UtcDatetime


def _refused(model: type[BaseModel], field: str, value: str) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate({field: value})
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    return str(error["msg"])


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00", "9999-12-31T23:59:59", "2026-01-01"])
def test_a_naive_bound_is_refused_naming_the_field(value: str) -> None:
    assert "timezone" in _refused(RangeQuery, "start", value)


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",
        "0001-01-01T00:59:59.999999+01:00",
        "9999-12-31T23:59:59-01:00",
        "9999-12-31T23:59:59.999999-23:59",
    ],
)
def test_an_offset_past_year_1_or_9999_is_refused_not_overflowing(value: str) -> None:
    assert "0001 to 9999" in _refused(RangeQuery, "start", value)
    assert "outside the supported range" in _refused(Lookup, "at", value)


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("0001-01-01T00:00:00-14:00", datetime(1, 1, 1, 14, tzinfo=UTC)),
        ("9999-12-31T23:59:59+14:00", datetime(9999, 12, 31, 9, 59, 59, tzinfo=UTC)),
        ("2026-01-01T00:30:00+23:59", datetime(2025, 12, 31, 0, 31, tzinfo=UTC)),
    ],
)
def test_a_bound_anywhere_in_utc_is_kept_as_that_utc_moment(value: str, utc: datetime) -> None:
    start = RangeQuery.model_validate({"start": value}).start
    assert start == utc and start is not None and start.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z", "2200-01-01T00:00:00Z"]
)
def test_a_looked_up_time_outside_the_stored_range_is_refused(value: str) -> None:
    """``at`` is echoed in a response whose model holds stored times only: refused on the
    way in, not when the response is validated (a 500)."""
    assert "outside the supported range" in _refused(Lookup, "at", value)


@pytest.mark.parametrize(
    "value",
    [
        "2016-12-31T23:59:60Z",
        "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "0000-01-01T00:00:00Z",
    ],
)
def test_impossible_calendar_times_are_refused(value: str) -> None:
    _refused(RangeQuery, "start", value)
    _refused(Lookup, "at", value)
