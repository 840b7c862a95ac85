"""Synthetic 8-sensor readings and the wire bodies the load generators send.

Bodies are encoded once, before a timed run, with the real wire contract
(:meth:`ReadingsBatch.to_wire`); each send only stamps a fresh ``message_id`` and
``sent_at`` into them. Encoding is the machines' CPU, not the pipeline's, and on this
2-core machine both would otherwise share the same cores.

>>> pool = BodyPool.build("pump-1", batch_size=3, distinct=2, seed=0)
>>> message_id, body = pool.next_body()
>>> batch = ReadingsBatch.model_validate_json(body)
>>> str(batch.message_id) == message_id, len(batch), batch.columns[0]
(True, 3, 'Accelerometer1RMS')
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from backend.schemas.readings import ReadingsBatch

__all__ = ["SENSORS", "BodyPool", "dataframe_split_body", "sensor_values", "training_frame"]

SENSORS: tuple[str, ...] = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)
_START = datetime(2026, 1, 1, tzinfo=UTC)
_PLACEHOLDER_ID = uuid.UUID(int=0)
_PLACEHOLDER_SENT = datetime(2000, 1, 1, tzinfo=UTC)


def sensor_values(n: int, seed: int) -> np.ndarray:
    """``n`` readings of 8 correlated sensors: three latent drivers plus noise."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(7).normal(size=(3, len(SENSORS)))
    latent = rng.normal(size=(n, 3))
    return latent @ mixing + 0.1 * rng.normal(size=(n, len(SENSORS))) + 10.0


def training_frame(n: int, seed: int) -> pd.DataFrame:
    """A machine's history: ``n`` readings, one per second, indexed by UTC time."""
    index = pd.date_range(_START - timedelta(seconds=n), periods=n, freq="s", tz="UTC")
    return pd.DataFrame(sensor_values(n, seed), columns=list(SENSORS), index=index)


def dataframe_split_body(values: np.ndarray) -> bytes:
    """The JSON ``mlflow models serve`` takes: ``{"dataframe_split": {columns, data}}``."""
    payload = {"dataframe_split": {"columns": list(SENSORS), "data": values.tolist()}}
    return json.dumps(payload).encode()


def _utc_text(value: datetime) -> bytes:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()


@dataclass(frozen=True)
class _Template:
    head: bytes  # ... "message_id":"
    middle: bytes  # ","machine_id":...,"sent_at":"
    tail: bytes  # ","columns":...

    def render(self, message_id: str, sent_at: datetime) -> bytes:
        return b"".join(
            (self.head, message_id.encode(), self.middle, _utc_text(sent_at), self.tail)
        )


@dataclass
class BodyPool:
    """``distinct`` pre-encoded batches of one machine, sent round-robin."""

    machine_id: str
    batch_size: int
    templates: list[_Template]
    _cursor: int = 0

    @classmethod
    def build(cls, machine_id: str, batch_size: int, distinct: int = 8, seed: int = 0) -> BodyPool:
        values = sensor_values(batch_size * distinct, seed)
        templates = []
        for i in range(distinct):
            rows = values[i * batch_size : (i + 1) * batch_size]
            stamps = [_START + timedelta(seconds=i * batch_size + j) for j in range(batch_size)]
            batch = ReadingsBatch(
                message_id=_PLACEHOLDER_ID,
                machine_id=machine_id,
                sent_at=_PLACEHOLDER_SENT,
                columns=list(SENSORS),
                timestamps=stamps,
                values=rows.tolist(),
            )
            body = batch.to_wire()
            head, _, rest = body.partition(str(_PLACEHOLDER_ID).encode())
            sent_text = json.dumps(batch.sent_at.isoformat().replace("+00:00", "Z")).encode()
            middle, _, tail = rest.partition(sent_text)
            if not tail:
                raise RuntimeError("wire body layout changed: sent_at not found")
            templates.append(_Template(head, middle + b'"', b'"' + tail))
        return cls(machine_id, batch_size, templates)

    def next_body(self, sent_at: datetime | None = None) -> tuple[str, bytes]:
        """A body with a new message id; ``sent_at`` defaults to now."""
        template = self.templates[self._cursor % len(self.templates)]
        self._cursor += 1
        message_id = str(uuid.uuid4())
        return message_id, template.render(message_id, sent_at or datetime.now(UTC))
