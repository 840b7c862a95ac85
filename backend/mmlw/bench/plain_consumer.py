"""The consumer a user would write instead of MMLW, run as separate processes.

``mode="score"``: ``basic_consume`` with prefetch -> ``json.loads`` -> DataFrame -> the
registered MLflow pyfunc's ``predict`` -> ack; no validation and nothing stored.
``mode="ack"``: only acks each message: the broker's own publish + consume limit.
Each process adds the messages it handled to a shared counter and the time of its last
ack to a shared clock.
"""

from __future__ import annotations

import json
import multiprocessing
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.context import SpawnProcess
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Any, Literal

__all__ = ["ConsumerGroup", "ModelRef", "consume"]

Mode = Literal["score", "ack"]


@dataclass(frozen=True)
class ModelRef:
    tracking_uri: str
    model_prefix: str
    signing_key: bytes
    versions: dict[str, int]  # machine id -> version


def _load_models(ref: ModelRef) -> dict[str, Any]:
    from mmlw.registry.mlflow_registry import MlflowRegistry
    from mmlw.registry.pyfunc_model import AnomalyPyfunc

    registry = MlflowRegistry(
        ref.tracking_uri, signing_key=ref.signing_key, model_prefix=ref.model_prefix
    )
    return {
        machine: AnomalyPyfunc(registry.load(machine, version))
        for machine, version in ref.versions.items()
    }


def consume(
    url: str,
    queue: str,
    mode: Mode,
    model: ModelRef | None,
    prefetch: int,
    messages: Synchronized,  # type: ignore[type-arg]
    last_ack_s: Synchronized,  # type: ignore[type-arg]
    ready: Event,
    stop: Event,
) -> None:
    """Consume ``queue`` until ``stop`` is set (the target of each consumer process)."""
    import pandas as pd
    import pika

    warnings.simplefilter("ignore", UserWarning)  # mlflow's advice on type hints, per model

    from mmlw.messaging.pika_publisher import pika_url

    models = _load_models(model) if mode == "score" and model is not None else {}
    connection = pika.BlockingConnection(pika.URLParameters(pika_url(url)))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)

    def on_message(ch: Any, method: Any, _properties: Any, body: bytes) -> None:
        if mode == "score":
            data = json.loads(body)
            frame = pd.DataFrame(data["values"], columns=data["columns"])
            models[data["machine_id"]].predict(None, frame)
        ch.basic_ack(delivery_tag=method.delivery_tag)
        with messages.get_lock():
            messages.value += 1
        with last_ack_s.get_lock():
            last_ack_s.value = max(last_ack_s.value, time.time())

    channel.basic_consume(queue, on_message)
    ready.set()
    while not stop.is_set():
        connection.process_data_events(time_limit=0.2)
    connection.close()


class ConsumerGroup:
    """``processes`` spawned consumers of one queue, with shared progress counters."""

    def __init__(
        self,
        url: str,
        queue: str,
        mode: Mode,
        *,
        processes: int,
        model: ModelRef | None = None,
        prefetch: int = 32,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.messages: Synchronized = context.Value("q", 0)  # type: ignore[type-arg]
        self.last_ack_s: Synchronized = context.Value("d", 0.0)  # type: ignore[type-arg]
        self._stop = context.Event()
        self._ready: Sequence[Event] = [context.Event() for _ in range(processes)]
        self._processes: list[SpawnProcess] = [
            context.Process(
                target=consume,
                args=(url, queue, mode, model, prefetch, self.messages, self.last_ack_s),
                kwargs={"ready": ready, "stop": self._stop},
                daemon=True,
            )
            for ready in self._ready
        ]

    def start(self, timeout_s: float = 120.0) -> None:
        for process in self._processes:
            process.start()
        deadline = time.monotonic() + timeout_s
        for ready, process in zip(self._ready, self._processes, strict=True):
            while not ready.wait(0.2):
                if not process.is_alive():
                    raise RuntimeError(f"consumer process exited with {process.exitcode}")
                if time.monotonic() > deadline:
                    raise RuntimeError("consumer processes did not start in time")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p.pid is not None]

    def stop(self) -> None:
        self._stop.set()
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
