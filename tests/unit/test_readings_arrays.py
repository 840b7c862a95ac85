"""The fast decoder agrees with the contract: what it accepts the model accepts, with the
same content; what it does not take goes to the model, which words the reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmlw.errors import InvalidMessage
from mmlw.schemas.readings import ReadingsBatch, parse_readings_message
from mmlw.schemas.readings_arrays import ReadingsArrays, _fast, decode_readings

BASE: dict[str, Any] = {
    "schema": "mmlw.readings/1",
    "message_id": "6f1c2b1e-3c1a-4d2e-9f00-000000000001",
    "machine_id": "pump-1",
    "sent_at": "2026-11-22T10:00:00Z",
    "columns": ["a", "b"],
    "timestamps": ["2026-11-22T09:59:58Z", "2026-11-22T09:59:59Z"],
    "values": [[1.0, 2.0], [3.0, 4.5]],
}


def body(**changes: Any) -> bytes:
    message = {**BASE, **changes}
    return json.dumps({k: v for k, v in message.items() if v is not ...}).encode()


def expected(raw: bytes) -> ReadingsArrays:
    """What the contract's own validation makes of ``raw``."""
    return ReadingsArrays.of(parse_readings_message(raw))


def assert_same(got: ReadingsArrays, want: ReadingsArrays) -> None:
    assert (got.machine_id, got.message_id, got.columns) == (
        want.machine_id,
        want.message_id,
        want.columns,
    )
    np.testing.assert_array_equal(got.timestamps_us, want.timestamps_us)
    assert got.values.dtype == np.float64 and got.values.shape == want.values.shape
    np.testing.assert_array_equal(got.values, want.values)
    if want.labels is None:
        assert got.labels is None
    else:
        assert got.labels is not None and got.labels.dtype == np.int8
        np.testing.assert_array_equal(got.labels, want.labels)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"labels": [0, 1]},
        {"labels": None},
        {"labels": [True, False]},  # 1 and 0 to the model too
        {"sent_at": ...},
        {"values": [[1, 2], [3, 4]]},  # integers are numbers
        {"values": [[True, 2.0], [3.0, 4.0]]},  # so are booleans, to the model too (1.0)
        {"message_id": "6F1C2B1E-3C1A-4D2E-9F00-000000000001"},  # upper-case hex
        {"timestamps": ["2026-11-22T09:59:58.5Z", "2026-11-22T09:59:59.123456Z"]},
        {"timestamps": ["2000-02-29T23:59:59Z", "1970-01-01T00:00:00Z"]},  # leap day, epoch
        {"timestamps": ["1970-01-01T00:00:00Z", "2199-12-31T23:59:59.999999Z"]},  # the range
        {"timestamps": ["2026-11-22T09:59:58Z", "2026-11-22T09:59:59.25Z"]},  # mixed forms
    ],
)
def test_plain_valid_messages_take_the_fast_path_with_the_models_content(
    changes: dict[str, Any],
) -> None:
    raw = body(**changes)
    fast = _fast(raw, None)
    assert fast is not None
    assert_same(fast, expected(raw))


@pytest.mark.parametrize(
    "changes",
    [
        {"values": [["1.5", 2.0], [3.0, 4.0]]},  # numeric strings: the model decides
        {"labels": [1.0, 0.0]},
        {"message_id": "6f1c2b1e3c1a4d2e9f00000000000001"},  # uuid without hyphens
        {"timestamps": ["2026-11-22 09:59:58Z", "2026-11-22T09:59:59Z"]},  # space
        {"timestamps": ["2026-11-22T10:59:58+01:00", "2026-11-22T09:59:59Z"]},  # offset
        {"timestamps": ["2026-11-22T09:59:58.1234567Z", "2026-11-22T09:59:59Z"]},
    ],
)
def test_other_valid_spellings_go_to_the_model_and_decode_the_same(
    changes: dict[str, Any],
) -> None:
    raw = body(**changes)
    assert _fast(raw, None) is None
    assert_same(decode_readings(raw), expected(raw))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"schema": "mmlw.readings/2"}, "schema"),
        ({"schema": ...}, "schema"),
        ({"schema_": "mmlw.readings/1", "schema": ...}, "schema"),  # the field's own name
        ({"machine_id": "pump 1"}, "machine_id"),
        ({"machine_id": 7}, "machine_id"),
        ({"message_id": "not-a-uuid"}, "message_id"),
        ({"sent_at": "2026-11-22T10:00:00"}, "sent_at"),  # no time zone
        ({"sent_at": 1700000000}, "sent_at"),
        ({"columns": []}, "columns"),
        ({"columns": ["a", "a"]}, "columns"),
        ({"columns": ["a", "b c!"]}, "columns"),
        ({"columns": ["a", ["b"]]}, "columns"),
        ({"timestamps": []}, "timestamps"),
        ({"timestamps": ["2026-11-22T09:59:58", "2026-11-22T09:59:59"]}, "timestamps"),
        ({"timestamps": ["2026-02-30T00:00:00Z", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"timestamps": ["2026-04-31T00:00:00Z", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"timestamps": ["1900-02-29T00:00:00Z", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"timestamps": ["2026-12-31T23:59:60Z", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"timestamps": ["2026-12-31T24:00:00Z", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"timestamps": ["0000-01-01T00:00:00Z", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"timestamps": ["0001-01-01T00:00:00Z", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"timestamps": ["1969-12-31T23:59:59Z", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"timestamps": ["2200-01-01T00:00:00Z", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"timestamps": ["9999-12-31T23:59:59Z", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"timestamps": ["2026-11-22T09:59:59Z", "9999-12-31T23:59:59.5Z"]}, "timestamps"),
        ({"timestamps": ["0001-01-01T00:00:00+00:01", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"timestamps": ["9999-12-31T23:59:59-23:59", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"sent_at": "0001-01-01T00:00:00+23:59"}, "sent_at"),
        ({"sent_at": "9999-12-31T23:59:59-00:01"}, "sent_at"),
        ({"sent_at": "1969-12-31T23:59:59Z"}, "sent_at"),
        ({"timestamps": [1700000000, 1700000001]}, "timestamps"),
        ({"timestamps": ["2026-11-22T09:59:5éZ", "2026-11-22T09:59:59Z"]}, "timestamps"),
        ({"timestamps": ["2026-11-22T09:59:59Z"]}, "values"),  # 2 rows for 1 timestamp
        ({"values": [[1.0, 2.0], [3.0]]}, "values"),
        ({"values": [[1.0, 2.0], "34"]}, "values"),
        ({"values": [[1.0, 2.0], [3.0, None]]}, "values"),
        ({"values": [[1.0, 2.0], [3.0, "x"]]}, "values"),
        ({"values": [[1.0, 2.0], [3.0, 10**400]]}, "values"),
        ({"labels": [0, 2]}, "labels"),
        ({"labels": [0]}, "labels"),
        ({"extra": 1}, "extra"),
    ],
)
def test_invalid_messages_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    raw = body(**changes)
    assert _fast(raw, None) is None
    with pytest.raises(InvalidMessage) as refused:
        decode_readings(raw)
    assert field in refused.value.reason
    with pytest.raises(InvalidMessage):
        parse_readings_message(raw)


def test_non_finite_and_non_json_bodies_are_refused() -> None:
    for raw in (
        body().replace(b"4.5", b"NaN"),
        body().replace(b"4.5", b"1e400"),
        b"\xff\xfe",
        b"[1, 2]",
        b"",
    ):
        assert _fast(raw, None) is None
        with pytest.raises(InvalidMessage):
            decode_readings(raw)


def test_the_reading_limit_is_worded_by_the_model() -> None:
    with pytest.raises(InvalidMessage, match="exceed the limit 1"):
        decode_readings(body(), max_readings=1)


def test_a_message_without_id_gets_a_fresh_one() -> None:
    first, second = decode_readings(body(message_id=...)), decode_readings(body(message_id=...))
    assert first.message_id != second.message_id


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 30),
    width=st.integers(1, 5),
    fraction=st.booleans(),
    labelled=st.booleans(),
)
def test_random_batches_decode_as_the_model_does(
    data: st.DataObject, n: int, width: int, fraction: bool, labelled: bool
) -> None:
    # the contract's range (1970 to 2199), steps of -1 s .. +1000 s
    start = datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC) + timedelta(
        seconds=data.draw(st.integers(0, 7 * 10**9))
    )
    steps = data.draw(st.lists(st.integers(-(10**6), 10**9), min_size=n, max_size=n))
    times = [start + timedelta(microseconds=s if fraction else s // 10**6 * 10**6) for s in steps]
    batch = ReadingsBatch.of_rows(
        "m-1",
        [f"s{i}" for i in range(width)],
        times,
        data.draw(
            st.lists(st.lists(finite, min_size=width, max_size=width), min_size=n, max_size=n)
        ),
        data.draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n)) if labelled else None,
    )
    raw = batch.to_wire()
    got = decode_readings(raw)
    assert_same(got, expected(raw))
    if not fraction:
        assert _fast(raw, None) is not None
