"""The wire contract: valid batches pass, every kind of bad input names its field."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from mmlw.errors import InvalidMessage
from mmlw.schemas import READINGS_SCHEMA, ReadingsBatch, TrainRequest, parse_readings_message


def message(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "schema": READINGS_SCHEMA,
        "message_id": str(uuid.uuid4()),
        "machine_id": "pump-1",
        "sent_at": "2026-11-22T10:00:00Z",
        "columns": ["Current", "Pressure"],
        "timestamps": ["2026-11-22T09:59:58Z", "2026-11-22T09:59:59Z"],
        "values": [[0.81, 1.02], [0.82, 1.01]],
        "labels": [0, 1],
    }
    base.update(overrides)
    return base


def test_valid_message_round_trips() -> None:
    raw = message()
    batch = parse_readings_message(json.dumps(raw).encode())
    assert batch.machine_id == "pump-1"
    assert len(batch) == 2
    assert batch.timestamps[0] == datetime(2026, 11, 22, 9, 59, 58, tzinfo=UTC)
    again = parse_readings_message(batch.to_wire())
    assert again == batch
    assert json.loads(batch.to_wire())["schema"] == READINGS_SCHEMA


def test_timestamps_are_normalised_to_utc() -> None:
    batch = parse_readings_message(
        json.dumps(message(timestamps=["2026-11-22T11:00:00+01:00", "2026-11-22T10:00:01Z"]))
    )
    assert batch.timestamps[0] == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert batch.timestamps[0].tzinfo is UTC


INVALID_MESSAGES = [
    (b"{not json", "body"),
    (b"\xff\xfe", "body"),
    (b"[1, 2]", "body"),
    (json.dumps(message(schema="mmlw.readings/0")).encode(), "schema"),
    (json.dumps({k: v for k, v in message().items() if k != "schema"}).encode(), "schema"),
    (json.dumps(message(extra_field=1)).encode(), "extra_field"),
    (json.dumps(message()).replace("0.81", "NaN").encode(), "values.0.0"),
    (json.dumps(message()).replace("0.81", "Infinity").encode(), "values.0.0"),
    (json.dumps(message(values=[[1.0, 2.0]])).encode(), "values"),
    (json.dumps(message(values=[[1.0], [2.0, 3.0]])).encode(), "values[0]"),
    (json.dumps(message(labels=[0])).encode(), "labels"),
    (json.dumps(message(labels=[0, 2])).encode(), "labels.1"),
    (json.dumps(message(columns=["a", "a"])).encode(), "columns"),
    (json.dumps(message(machine_id="bad id!")).encode(), "machine_id"),
    (json.dumps(message(machine_id="a.b")).encode(), "machine_id"),
    (json.dumps(message(timestamps=["2026-11-22T09:59:58", "x"])).encode(), "timestamps.0"),
    (json.dumps(message(message_id="not-a-uuid")).encode(), "message_id"),
    (json.dumps(message(values=[["a", 1.0], [1.0, 1.0]])).encode(), "values.0.0"),
]


@pytest.mark.parametrize(
    ("body", "field"),
    INVALID_MESSAGES,
    # ids by position: the bodies hold random message ids (parallel runs must agree)
    ids=[f"{i}-{field}" for i, (_, field) in enumerate(INVALID_MESSAGES)],
)
def test_invalid_messages_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_readings_message(body)
    assert field in caught.value.reason


def test_batch_size_limit() -> None:
    with pytest.raises(InvalidMessage, match="exceed the limit 1"):
        parse_readings_message(json.dumps(message()), max_readings=1)


def test_batch_is_frozen() -> None:
    batch = ReadingsBatch.model_validate(message())
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        batch.machine_id = "other"  # type: ignore[misc]


def test_train_request_window_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="end"):
        TrainRequest(
            machine_id="m",
            start=datetime(2026, 1, 2, tzinfo=UTC),
            end=datetime(2026, 1, 1, tzinfo=UTC),
        )
    with pytest.raises(ValueError, match="detector"):
        TrainRequest(machine_id="m", detector="Robert'); DROP TABLE")
