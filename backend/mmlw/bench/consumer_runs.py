"""Publish a fixed count of readings through RabbitMQ into a group of plain consumers and
time it from the first publish to the last ack (a baseline, or the broker's own limit)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mmlw.bench.loadgen import PublishLog, publish_readings
from mmlw.bench.payloads import BodyPool
from mmlw.bench.plain_consumer import ConsumerGroup, Mode, ModelRef
from mmlw.messaging.pika_publisher import PikaReadingsPublisher
from mmlw.messaging.topology import Topology

__all__ = ["ConsumerRun", "run_consumer_group"]


@dataclass(frozen=True)
class ConsumerRun:
    readings: int
    messages: int
    seconds: float
    publish_seconds: float

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds if self.seconds > 0 else 0.0


def run_consumer_group(
    url: str,
    topology: Topology,
    pools: Sequence[BodyPool],
    readings: int,
    *,
    mode: Mode,
    processes: int,
    model: ModelRef | None = None,
    echo: Callable[[str], None] = print,
    label: str = "",
    timeout_s: float = 600.0,
) -> ConsumerRun:
    with PikaReadingsPublisher(url, topology) as publisher:
        publisher.connect()  # the queue exists before the consumers attach
    group = ConsumerGroup(url, topology.ingest_queue_name, mode, processes=processes, model=model)
    group.start()
    log = PublishLog()
    failure: list[BaseException] = []

    def publish() -> None:
        try:
            publish_readings(url, topology, pools, readings, log=log)
        except BaseException as exc:
            failure.append(exc)

    try:
        publisher_thread = threading.Thread(target=publish, name="bench-publisher", daemon=True)
        publisher_thread.start()
        batch_size = pools[0].batch_size
        expected = -(-readings // batch_size)
        deadline = time.monotonic() + timeout_s
        next_report = time.monotonic() + 2.0
        while group.messages.value < expected:
            if failure:
                raise RuntimeError(f"{label}: publishing failed: {failure[0]}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{label}: {group.messages.value}/{expected} messages consumed "
                    f"after {timeout_s:.0f} s"
                )
            if time.monotonic() >= next_report:
                elapsed = time.time() - log.first_s
                done = group.messages.value * batch_size
                echo(
                    f"  {label}: published {log.readings:,}, consumed {done:,} "
                    f"({done / max(elapsed, 1e-9):,.0f} readings/s)"
                )
                next_report += 2.0
            time.sleep(0.05)
        publisher_thread.join()
        messages = int(group.messages.value)
        return ConsumerRun(
            readings=messages * batch_size,
            messages=messages,
            seconds=group.last_ack_s.value - log.first_s,
            publish_seconds=log.last_s - log.first_s,
        )
    finally:
        group.stop()
