"""The one thing every readings producer needs: somewhere to put a batch."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from mmlw.schemas.readings import ReadingsBatch
from mmlw.settings import INGEST_MAX_LENGTH, BrokerSettings

__all__ = ["ListSink", "ReadingsSink", "open_readings_sink", "sink_from_settings"]


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


def open_readings_sink(
    broker_url: str,
    namespace: str = "mmlw",
    *,
    ingest_max_length: int | None = INGEST_MAX_LENGTH,
    spool_path: Path | None = None,
    spool_max_bytes: int = 256 * 2**20,
) -> ReadingsSink:
    """pika (what machines use) for RabbitMQ URLs, kombu for every other transport.

    ``spool_path``: keep what the broker cannot take in that local spool (RabbitMQ only).
    """
    from mmlw.messaging.topology import Topology

    topology = Topology(namespace, ingest_max_length)
    if broker_url.startswith(("amqp://", "amqps://", "pyamqp://")):
        from mmlw.messaging.pika_publisher import PikaReadingsPublisher

        return PikaReadingsPublisher(
            broker_url.replace("pyamqp://", "amqp://", 1),
            topology,
            spool_path=spool_path,
            spool_max_bytes=spool_max_bytes,
        )
    if spool_path is not None:
        raise ValueError(f"a local spool needs a RabbitMQ broker, not {broker_url.split(':')[0]}")
    from mmlw.messaging.kombu_publisher import KombuReadingsPublisher

    return KombuReadingsPublisher(broker_url, topology)


def sink_from_settings(broker: BrokerSettings, *, spool_path: Path | None = None) -> ReadingsSink:
    """The sink ``broker`` describes; a spool only when ``spool_path`` names one."""
    return open_readings_sink(
        broker.url,
        broker.namespace,
        ingest_max_length=broker.ingest_max_length,
        spool_path=spool_path,
        spool_max_bytes=int(broker.spool_max_mb * 2**20),
    )
