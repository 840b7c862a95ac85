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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from mmlw.schemas.readings import ReadingsBatch

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


SENSOR_DECIMALS = 4  # 6 significant digits around 10, what SKAB's sensors report


def sensor_values(n: int, seed: int) -> np.ndarray:
    """``n`` readings of 8 correlated sensors: three latent drivers plus noise, at the
    resolution real sensors report (:data:`SENSOR_DECIMALS`; full 17-digit doubles
    would make a 1000-reading message 172 KB instead of about 100 KB)."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(7).normal(size=(3, len(SENSORS)))
    latent = rng.normal(size=(n, 3))
    values = latent @ mixing + 0.1 * rng.normal(size=(n, len(SENSORS))) + 10.0
    return np.round(values, SENSOR_DECIMALS)


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
    before_times: bytes  # ","columns":...,"timestamps":
    tail: bytes  # ,"values":...

    def render(self, message_id: str, sent_at: datetime, times: bytes) -> bytes:
        return b"".join(
            (
                self.head,
                message_id.encode(),
                self.middle,
                _utc_text(sent_at),
                self.before_times,
                times,
                self.tail,
            )
        )


def _times_json(first_s: int, n: int) -> bytes:
    """``n`` readings one second apart from ``first_s`` after the pool's start, as the
    JSON list the wire contract has (``YYYY-MM-DDTHH:MM:SSZ``)."""
    stamps = np.datetime64(_START.replace(tzinfo=None), "s") + np.arange(first_s, first_s + n)
    return ('["' + 'Z","'.join(np.datetime_as_string(stamps).tolist()) + 'Z"]').encode()


@dataclass
class BodyPool:
    """``distinct`` pre-encoded batches of one machine's values, sent round-robin; each
    send is stamped with a fresh ``message_id``, its ``sent_at`` and the next
    ``batch_size`` seconds of the machine's time, as a real machine's batches go on in
    time (a re-sent body with the same times would look like a replay to the store)."""

    machine_id: str
    batch_size: int
    templates: list[_Template]
    _cursor: int = 0
    _times: dict[int, bytes] = field(default_factory=dict)

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
            middle, _, rest = rest.partition(sent_text)
            times = _times_json(i * batch_size, batch_size)
            before_times, _, tail = rest.partition(times)
            if not tail:
                raise RuntimeError("wire body layout changed: sent_at or timestamps not found")
            templates.append(_Template(head, middle + b'"', b'"' + before_times, tail))
        return cls(machine_id, batch_size, templates)

    def prepare(self, messages: int) -> None:
        """Encode the times of the next ``messages`` sends now (before a timed run)."""
        for k in range(self._cursor, self._cursor + messages):
            self._times.setdefault(k, _times_json(k * self.batch_size, self.batch_size))

    def next_body(self, sent_at: datetime | None = None) -> tuple[str, bytes]:
        """A body with a new message id; ``sent_at`` defaults to now."""
        k = self._cursor
        self._cursor += 1
        times = self._times.pop(k, None) or _times_json(k * self.batch_size, self.batch_size)
        template = self.templates[k % len(self.templates)]
        message_id = str(uuid.uuid4())
        return message_id, template.render(message_id, sent_at or datetime.now(UTC), times)
