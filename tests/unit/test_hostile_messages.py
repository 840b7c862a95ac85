"""Hostile wire messages: every decode path is bounded (size, nesting, UTF-8, time range)
and refuses with :class:`InvalidMessage` naming the field -- never RecursionError,
OverflowError, MemoryError or any other exception -- on the fast path and the model's."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmlw.errors import InvalidMessage
from mmlw.schemas.readings import (
    MAX_COLUMNS,
    MAX_JSON_DEPTH,
    MAX_MESSAGE_BYTES,
    ReadingsBatch,
    json_nesting_exceeds,
    parse_readings_message,
)
from mmlw.schemas.readings_arrays import decode_readings
from mmlw.settings import BrokerSettings

BASE: dict[str, Any] = {
    "schema": "mmlw.readings/1",
    "message_id": "6f1c2b1e-3c1a-4d2e-9f00-000000000001",
    "machine_id": "pump-1",
    "sent_at": "2026-11-22T10:00:00Z",
    "columns": ["a", "b"],
    "timestamps": ["2026-11-22T09:59:58Z", "2026-11-22T09:59:59Z"],
    "values": [[1.0, 2.0], [3.0, 4.5]],
}
DECODERS: list[Callable[..., object]] = [decode_readings, parse_readings_message]


def body(**changes: Any) -> bytes:
    return json.dumps({**BASE, **changes}).encode()


def refused(decode: Callable[..., object], raw: bytes | str, **limits: Any) -> str:
    """The reason ``decode`` refuses ``raw`` with (anything but InvalidMessage fails)."""
    with pytest.raises(InvalidMessage) as caught:
        decode(raw, **limits)
    return caught.value.reason


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b"{" * 100_000,
        b'{"schema": "mmlw.readings/1", "values": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        body(extra=json.loads("[" * 100 + "]" * 100)),
    ],
    ids=["array", "unclosed-objects", "inside-a-field", "just-over-the-limit"],
)
def test_deep_nesting_is_refused_before_parsing(decode: Callable[..., object], raw: bytes) -> None:
    assert f"nested more than {MAX_JSON_DEPTH} levels" in refused(decode, raw)


def test_nesting_is_counted_as_a_parser_meets_it() -> None:
    assert not json_nesting_exceeds(b'{"a": "[[[[[[[[[[", "b": [[1]]}', 3)
    assert not json_nesting_exceeds(b'{"a": "\\"[[[[[[", "b": [[1]]}', 3)  # escaped quote
    assert json_nesting_exceeds(b'{"a": "]]]]]]]]]]", "b": [[[[1]]]]}', 3)  # no masking
    assert json_nesting_exceeds(b'["\\\\"' + b"[" * 10, 3)  # an escaped backslash ends it
    assert not json_nesting_exceeds(b'"unterminated [[[[[[[[', 3)
    assert not json_nesting_exceeds(b'\\"' * 100_000 + b"\\", 3)  # any bytes, linear
    assert not json_nesting_exceeds(b"", 0)


@settings(max_examples=200, deadline=None)
@given(
    value=st.recursive(
        st.none() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=20,
    )
)
def test_nesting_depth_agrees_with_the_parsed_value(value: object) -> None:
    def depth(item: object) -> int:
        if isinstance(item, list):
            return 1 + max(map(depth, item), default=0)
        if isinstance(item, dict):
            return 1 + max(map(depth, item.values()), default=0)
        return 0

    raw = json.dumps(value).encode()
    assert not json_nesting_exceeds(raw, depth(value))
    assert json_nesting_exceeds(raw, depth(value) - 1) == (depth(value) > 0)


@pytest.mark.parametrize("decode", DECODERS)
def test_a_body_over_the_size_limit_is_refused_unparsed(decode: Callable[..., object]) -> None:
    raw = body()
    assert refused(decode, raw, max_bytes=len(raw) - 1).startswith(
        f"body: {len(raw)} bytes exceed the limit {len(raw) - 1}"
    )
    assert refused(decode, raw.decode(), max_bytes=10).startswith("body:")
    assert refused(decode, b"[" * 10_000_000, max_bytes=2**20).startswith("body:")
    decode(raw, max_bytes=len(raw))  # at the limit: fine


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("raw", "start"),
    [
        (body(values=[[]] * 400_000), "arrays and objects, more than a batch of 10 readings"),
        (body(extra=[{}] * 300_000), "arrays and objects, more than a batch of 10 readings"),
        (body(values=[[0.0] * 300_000]), "commas, more items than a batch of 10 readings"),
    ],
    ids=["rows", "objects", "numbers"],
)
def test_a_body_with_more_items_than_a_batch_can_have_is_refused_unparsed(
    decode: Callable[..., object], raw: bytes, start: str
) -> None:
    for text in (raw, raw.decode()):
        reason = refused(decode, text, max_readings=10)
        assert reason.startswith("body: ") and start in reason


@pytest.mark.parametrize("decode", DECODERS)
def test_a_batch_at_the_limits_is_taken(decode: Callable[..., object]) -> None:
    n, columns = 10, [f"s{i}" for i in range(MAX_COLUMNS)]
    times = [f"2026-11-22T09:59:{i:02}Z" for i in range(n)]
    decode(
        body(
            columns=columns,
            timestamps=times,
            values=[[1.5] * MAX_COLUMNS] * n,
            labels=[0] * n,
            message_id="{" + BASE["message_id"] + "}",
        ),
        max_readings=n,
    )


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("changes", "start"),
    [
        ({"values": [[1.0, 2.0]] * 1_000_000}, "values: 1000000 rows for 2 timestamps"),
        ({"values": [[1.0, 2.0], [3.0] * 1_000_000]}, "values[1]: 1000000 values for 2 columns"),
        ({"labels": [0] * 1_000_000}, "labels: 1000000 labels for 2 timestamps"),
    ],
    ids=["rows", "row-width", "labels"],
)
def test_counts_that_cannot_match_are_refused_before_every_value_is_validated(
    decode: Callable[..., object], changes: dict[str, Any], start: str
) -> None:
    assert refused(decode, body(**changes)).startswith(start)


def test_the_default_size_limit_is_the_settings_default() -> None:
    assert BrokerSettings().max_message_bytes == MAX_MESSAGE_BYTES


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timestamps": ["0001-01-01T00:00:00Z", "2026-11-22T09:59:59Z"]}, "timestamps.0"),
        ({"timestamps": ["2026-11-22T09:59:59Z", "0001-01-01T00:00:00+23:59"]}, "timestamps.1"),
        ({"timestamps": ["0001-01-01T00:00:00+00:01", "2026-11-22T09:59:59Z"]}, "timestamps.0"),
        ({"timestamps": ["9999-12-31T23:59:59Z", "2026-11-22T09:59:59Z"]}, "timestamps.0"),
        ({"timestamps": ["9999-12-31T23:59:59-23:59", "2026-11-22T09:59:59Z"]}, "timestamps.0"),
        ({"timestamps": ["9999-12-31T23:59:59.999999-00:01", "2026-11-22T09:59:59Z"]}, "timest"),
        ({"timestamps": ["1969-12-31T23:59:59.999999Z", "2026-11-22T09:59:59Z"]}, "timestamps.0"),
        ({"timestamps": ["2026-11-22T09:59:59Z", "2200-01-01T00:00:00Z"]}, "timestamps.1"),
        ({"timestamps": ["2199-12-31T23:00:00-01:00", "2026-11-22T09:59:59Z"]}, "timestamps.0"),
        ({"sent_at": "0001-01-01T00:00:00+23:59"}, "sent_at"),
        ({"sent_at": "0001-01-01T00:00:00Z"}, "sent_at"),
        ({"sent_at": "9999-12-31T23:59:59-23:59"}, "sent_at"),
        ({"sent_at": "9999-12-31T23:59:59Z"}, "sent_at"),
        ({"sent_at": "2200-01-01T00:00:00Z"}, "sent_at"),
    ],
)
def test_times_outside_the_range_are_refused_naming_the_field(
    decode: Callable[..., object], changes: dict[str, Any], field: str
) -> None:
    reason = refused(decode, body(**changes))
    assert reason.startswith(field)
    assert "outside the supported range 1970-01-01 to 2200-01-01" in reason


@pytest.mark.parametrize("decode", DECODERS)
def test_times_at_the_ends_of_the_range_are_taken(decode: Callable[..., object]) -> None:
    times = ["1970-01-01T00:00:00Z", "2199-12-31T23:59:59.999999Z"]
    decode(body(timestamps=times, sent_at="1970-01-01T01:00:00+01:00"))
    decode(body(timestamps=["1970-01-01T01:00:00+01:00", "2200-01-01T00:59:59+01:00"]))


def test_a_batch_outside_the_range_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="outside the supported range"):
        ReadingsBatch.of_rows("pump-1", ["a"], ["1900-01-01T00:00:00Z"], [[1.0]])


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("raw", "start"),
    [
        (b"\xff\xfe\x00\x01garbage", "body: not valid UTF-8"),
        (json.dumps(BASE).encode("utf-16"), "body: not valid UTF-8"),  # JSON, not UTF-8
        (body()[:-1] + b"\xc3", "body: not valid UTF-8"),
        (b"", "body: not valid JSON"),
        (b"{not json", "body: not valid JSON"),
        (b"[1, 2]", "body: expected a JSON object, got list"),
        (b"42", "body: expected a JSON object, got int"),
        (b'"text"', "body: expected a JSON object, got str"),
        (b"null", "body: expected a JSON object, got NoneType"),
        (body().replace(b"4.5", b"9" * 5000), "body: not valid JSON"),  # digits limit
        (body().replace(b"4.5", b"NaN"), "values.1.1"),
        (body().replace(b"4.5", b"-Infinity"), "values.1.1"),
        (body().replace(b"4.5", b"1e400"), "values.1.1"),
        (body(schema=[[["x"]]]), "schema: expected 'mmlw.readings/1', got a list"),
        (body(schema="x" * 10_000), "schema: expected"),
    ],
    ids=lambda value: repr(value[:24]),
)
def test_garbage_is_refused_naming_what_is_wrong(
    decode: Callable[..., object], raw: bytes, start: str
) -> None:
    reason = refused(decode, raw)
    assert reason.startswith(start)
    assert len(reason) < 400


@pytest.mark.parametrize("decode", DECODERS)
def test_field_names_a_sender_chose_are_escaped_and_shortened(
    decode: Callable[..., object],
) -> None:
    reason = refused(decode, body(**{"\x00evil\n" + "x" * 1000: 1}))
    assert "\x00" not in reason and "\n" not in reason
    assert reason.startswith("\\x00evil\\n") and len(reason) < 400


@pytest.mark.parametrize("decode", DECODERS)
def test_the_reading_limit_is_checked_before_every_reading_is_validated(
    decode: Callable[..., object],
) -> None:
    many = ["2026-11-22T09:59:59Z"] * 50_000
    assert refused(decode, body(timestamps=many), max_readings=1000).startswith(
        "timestamps: 50000 readings exceed the limit 1000"
    )


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300))
def test_any_bytes_either_decode_or_are_refused(raw: bytes) -> None:
    for decode in DECODERS:
        try:
            decode(raw)
        except InvalidMessage as exc:
            assert exc.reason


def _spliced(raw: bytes, at: int, insert: bytes) -> bytes:
    at = at % (len(raw) + 1)
    return raw[:at] + insert + raw[at:]


@settings(max_examples=300, deadline=None)
@given(
    at=st.integers(0, 10_000),
    insert=st.sampled_from(
        [b"[" * 5000, b"{", b"]", b'"', b"\\", b"\x00", b"\xff", b"-23:59", b"+23:59", b"9" * 400]
    )
    | st.binary(max_size=8),
    cut=st.integers(0, 10_000),
)
def test_a_valid_message_spliced_with_garbage_decodes_or_is_refused(
    at: int, insert: bytes, cut: int
) -> None:
    raw = _spliced(body(sent_at="9999-12-31T23:59:59Z"), at, insert)
    raw = raw[: max(cut % (len(raw) + 1), len(raw) // 2)]
    for decode in DECODERS:
        try:
            decode(raw)
        except InvalidMessage as exc:
            assert exc.reason
