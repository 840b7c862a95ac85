"""The readings batch: what a machine sends, over AMQP or HTTP.

A batch is frozen, forbids unknown fields and rejects NaN/inf, so a consumer either
gets a fully valid batch or an :class:`~mmlw.errors.InvalidMessage` naming the field.
Every time (``timestamps``, ``sent_at``) lies in ``[1970-01-01, 2200-01-01)`` once in UTC;
a wire message is at most ``max_bytes`` long (:data:`MAX_MESSAGE_BYTES` by default),
UTF-8, and nested at most :data:`MAX_JSON_DEPTH` deep, all checked before it is parsed,
so no body raises anything but :class:`~mmlw.errors.InvalidMessage`.

>>> batch = ReadingsBatch.of_rows("pump-1", ["a", "b"],
...     ["2026-11-22T10:00:00Z"], [[1.0, 2.0]])
>>> batch.machine_id, len(batch)
('pump-1', 1)
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from mmlw.errors import InvalidMessage

__all__ = [
    "EARLIEST_TIME",
    "LATEST_TIME",
    "MACHINE_ID_PATTERN",
    "MAX_COLUMNS",
    "MAX_JSON_DEPTH",
    "MAX_MESSAGE_BYTES",
    "READINGS_SCHEMA",
    "MachineId",
    "ReadingsBatch",
    "UtcBound",
    "UtcDatetime",
    "check_body",
    "describe_validation_error",
    "json_nesting_exceeds",
    "parse_readings_message",
]

READINGS_SCHEMA: Final = "mmlw.readings/1"
MACHINE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
SENSOR_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_ .()/%-]{0,63}$"
EARLIEST_TIME: Final = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TIME: Final = datetime(2200, 1, 1, tzinfo=UTC)  # excluded; within pandas' ns range
# the largest body a consumer parses (BrokerSettings.max_message_bytes, same default)
MAX_MESSAGE_BYTES: Final = 32 * 2**20
MAX_COLUMNS: Final = 256
MAX_JSON_DEPTH: Final = 32  # a readings message nests 3 deep: {"values": [[...]]}
# the message, columns, timestamps, values, labels (and a braced UUID's "{"), with room
_CONTAINERS_BESIDE_ROWS: Final = 8
_COUNTED_FROM: Final = 2**20  # bytes; a smaller body's objects are not worth counting
_OUT_OF_RANGE: Final = (
    f"outside the supported range {EARLIEST_TIME:%Y-%m-%d} to {LATEST_TIME:%Y-%m-%d} (UTC)"
)


def _to_utc(value: datetime) -> datetime:
    """The same moment in UTC, or ValueError if it is outside ``[EARLIEST_TIME,
    LATEST_TIME)`` -- also when its UTC offset carries it past year 1 or 9999 (which
    ``astimezone`` reports as OverflowError)."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(_OUT_OF_RANGE) from None
    if not EARLIEST_TIME <= utc < LATEST_TIME:
        raise ValueError(_OUT_OF_RANGE)
    return utc


def _in_utc(value: datetime) -> datetime:
    """The same moment in UTC, or ValueError if its UTC offset carries it past year 1 or
    9999 (which ``astimezone`` reports as OverflowError)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("outside the years 0001 to 9999 once in UTC") from None


def _iso_text(value: object) -> object:
    """Numbers are not times here: the schema says ISO 8601 (epoch numbers are ambiguous
    between seconds and milliseconds)."""
    if isinstance(value, int | float):
        raise ValueError("expected an ISO 8601 date-time string with a time zone")
    return value


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_to_utc)]
UtcBound = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_in_utc)]
"""A query's range bound: any moment with a time zone that exists in UTC; unlike a
stored time it may lie outside ``[EARLIEST_TIME, LATEST_TIME)`` ("from year 1")."""
MachineId = Annotated[str, Field(pattern=MACHINE_ID_PATTERN)]
SensorName = Annotated[str, Field(pattern=SENSOR_PATTERN)]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class ReadingsBatch(BaseModel):
    """One or more readings of one machine, column-aligned."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["mmlw.readings/1"] = Field(default=READINGS_SCHEMA, alias="schema")
    message_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    machine_id: MachineId
    sent_at: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))
    columns: list[SensorName] = Field(min_length=1, max_length=MAX_COLUMNS)
    timestamps: list[UtcDatetime] = Field(min_length=1)
    values: list[list[FiniteFloat]]
    labels: list[Literal[0, 1]] | None = None

    @model_validator(mode="after")
    def _aligned(self) -> ReadingsBatch:
        if len(set(self.columns)) != len(self.columns):
            raise ValueError("columns: names must be unique")
        n = len(self.timestamps)
        if len(self.values) != n:
            raise ValueError(f"values: {len(self.values)} rows for {n} timestamps")
        width = len(self.columns)
        for i, row in enumerate(self.values):
            if len(row) != width:
                raise ValueError(f"values[{i}]: {len(row)} values for {width} columns")
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"labels: {len(self.labels)} labels for {n} timestamps")
        return self

    def __len__(self) -> int:
        return len(self.timestamps)

    @classmethod
    def of_rows(
        cls,
        machine_id: str,
        columns: Sequence[str],
        timestamps: Sequence[datetime | str],
        values: Sequence[Sequence[float]],
        labels: Sequence[int] | None = None,
    ) -> ReadingsBatch:
        return cls.model_validate(
            {
                "machine_id": machine_id,
                "columns": list(columns),
                "timestamps": list(timestamps),
                "values": [list(map(float, row)) for row in values],
                "labels": None if labels is None else [int(x) for x in labels],
            }
        )

    def to_wire(self) -> bytes:
        """UTF-8 JSON, the only encoding on the wire."""
        return self.model_dump_json(by_alias=True).encode()


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _printable(text: str, limit: int = 64) -> str:
    """``text`` with control characters and lone surrogates escaped, at most ``limit``
    characters (a reason names a field a sender chose; it must store and print)."""
    escaped = _UNPRINTABLE.sub(lambda m: ascii(m.group())[1:-1], text)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each failing field, e.g. ``values.3.1: Input should be finite``;
    field names a sender made up are escaped and shortened."""
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(_printable(str(p)) for p in item["loc"]) or "message"
        parts.append(f"{where}: {_printable(item['msg'], 200)}")
    more = error.error_count() - len(parts)
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def check_body(body: bytes | str, max_bytes: int | None, max_readings: int | None = None) -> None:
    """:class:`InvalidMessage` if ``body`` is longer than ``max_bytes``; or, for a body of
    a MiB or more, if it opens more arrays and objects, or separates more items, than a
    batch of ``max_readings`` readings can (counted on the raw text, strings included: a
    valid message has no brackets in its strings, and at most one comma in a time).
    Checked before parsing, so no body makes a parser build millions of objects (a
    smaller one cannot make it build many). None: no such limit."""
    if max_bytes is not None and len(body) > max_bytes:
        raise InvalidMessage(f"body: {len(body)} bytes exceed the limit {max_bytes}")
    if max_readings is None or len(body) < _COUNTED_FROM:
        return
    import numpy as np  # here: a machine's publisher (the light package) has no numpy

    text = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    chars = np.frombuffer(text, dtype=np.uint8)
    opened = np.count_nonzero(chars == ord("[")) + np.count_nonzero(chars == ord("{"))
    if opened > max_readings + _CONTAINERS_BESIDE_ROWS:
        raise InvalidMessage(
            f"body: {opened} arrays and objects, more than a batch of {max_readings} readings has"
        )
    items = np.count_nonzero(chars == ord(","))
    if items > max_readings * (MAX_COLUMNS + 4) + 1024:
        raise InvalidMessage(
            f"body: {items} commas, more items than a batch of {max_readings} readings has"
        )


def _check_shape(raw: dict[str, Any], max_readings: int | None) -> None:
    """Refuse a batch whose counts cannot match before every value in it is validated
    (the model says the same, but only after validating millions of items)."""
    timestamps, values, columns = raw.get("timestamps"), raw.get("values"), raw.get("columns")
    if not isinstance(timestamps, list):
        return  # the model words it
    n = len(timestamps)
    if max_readings is not None and n > max_readings:
        raise InvalidMessage(f"timestamps: {n} readings exceed the limit {max_readings}")
    if isinstance(values, list) and len(values) != n:
        raise InvalidMessage(f"values: {len(values)} rows for {n} timestamps")
    labels = raw.get("labels")
    if isinstance(labels, list) and len(labels) != n:
        raise InvalidMessage(f"labels: {len(labels)} labels for {n} timestamps")
    if isinstance(values, list) and isinstance(columns, list):
        for i, row in enumerate(values):
            if isinstance(row, list) and len(row) != len(columns):
                raise InvalidMessage(f"values[{i}]: {len(row)} values for {len(columns)} columns")


# A JSON string as a parser meets it, or an unterminated one up to the end; possessive,
# so every match attempt succeeds and the scan is linear for any bytes.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_SCAN_CHUNK: Final = 1 << 20


def json_nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether the JSON text ``body`` opens more than ``limit`` arrays/objects inside one
    another, counted as a parser meets them (brackets in strings do not count); linear in
    ``len(body)``, no recursion, any bytes accepted (also invalid JSON).

    >>> json_nesting_exceeds(b'{"a": [1, "[[[["]}', 2), json_nesting_exceeds(b"[[[]]]", 2)
    (False, True)
    """
    import numpy as np  # here: a machine's publisher (the light package) has no numpy

    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = 0
    for start in range(0, len(brackets), _SCAN_CHUNK):
        chars = np.frombuffer(brackets[start : start + _SCAN_CHUNK], dtype=np.uint8)
        levels = depth + np.cumsum(np.where((chars == ord("[")) | (chars == ord("{")), 1, -1))
        if int(levels.max()) > limit:
            return True
        depth = int(levels[-1])
    return False


def _json_object(body: bytes | str) -> dict[str, Any]:
    """The JSON object in ``body``, or :class:`InvalidMessage`: too long, not UTF-8, nested
    too deeply (all checked before parsing), not JSON or not an object."""
    try:
        data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"body: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    if json_nesting_exceeds(data, MAX_JSON_DEPTH):
        raise InvalidMessage(f"body: JSON nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        raw: Any = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: also too many digits
        raise InvalidMessage(f"body: not valid JSON ({_printable(str(exc), 200)})") from None
    if not isinstance(raw, dict):
        raise InvalidMessage(f"body: expected a JSON object, got {type(raw).__name__}")
    return raw


def parse_readings_message(
    body: bytes | str, max_readings: int | None = None, max_bytes: int | None = MAX_MESSAGE_BYTES
) -> ReadingsBatch:
    """Decode and validate a wire message, or raise :class:`InvalidMessage` naming the
    field; nothing else, whatever the body (size, containers, nesting and UTF-8 are
    checked before parsing, counts before validating)."""
    check_body(body, max_bytes, max_readings)
    raw = _json_object(body)
    if raw.get("schema") != READINGS_SCHEMA:
        got = raw.get("schema")
        shown = f"a {type(got).__name__}" if isinstance(got, list | dict) else repr(got)
        raise InvalidMessage(f"schema: expected {READINGS_SCHEMA!r}, got {_printable(shown, 80)}")
    _check_shape(raw, max_readings)
    try:
        batch = ReadingsBatch.model_validate(raw)
    except ValidationError as exc:
        raise InvalidMessage(describe_validation_error(exc)) from None
    except (ArithmeticError, RecursionError) as exc:  # a validator's bug must not escape
        raise InvalidMessage(f"message: could not be validated ({type(exc).__name__})") from None
    return batch
