"""The one thing every readings producer needs: somewhere to put a batch."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from backend.schemas.readings import ReadingsBatch

__all__ = ["ListSink", "ReadingsSink", "open_readings_sink"]


@runtime_checkable
class ReadingsSink(Protocol):
    """Accepts batches; ``publish`` returns only once the batch is safely handed over."""

    def publish(self, batch: ReadingsBatch) -> None: ...

    def close(self) -> None: ...


class ListSink:
    """Keeps batches in memory: for tests and dry runs."""

    def __init__(self) -> None:
        self.batches: list[ReadingsBatch] = []

    def publish(self, batch: ReadingsBatch) -> None:
        self.batches.append(batch)

    def close(self) -> None:
        return None


def open_readings_sink(broker_url: str, namespace: str = "mmlw") -> ReadingsSink:
    """pika (what machines use) for RabbitMQ URLs, kombu for every other transport."""
    from backend.messaging.topology import Topology

    topology = Topology(namespace)
    if broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        from backend.messaging.pika_publisher import PikaReadingsPublisher

        return PikaReadingsPublisher(broker_url.replace("pyamqp://", "amqp://", 1), topology)
    from backend.messaging.kombu_publisher import KombuReadingsPublisher

    return KombuReadingsPublisher(broker_url, topology)
