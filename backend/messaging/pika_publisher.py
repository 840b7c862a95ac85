"""The machine side: publish readings to RabbitMQ with pika.

Persistent messages, publisher confirms, batching and reconnect with backoff. This is
also the few lines an integrator copies::

    from backend.messaging.pika_publisher import PikaReadingsPublisher
    with PikaReadingsPublisher("amqp://guest:guest@127.0.0.1:5672/%2F") as pub:
        pub.publish(ReadingsBatch.of_rows("pump-1", ["Current", "Pressure"],
                                          [timestamp], [[0.81, 1.02]]))
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType

import pika
import pika.exceptions

from backend.errors import ServiceUnavailable
from backend.messaging.topology import Topology
from backend.schemas.readings import ReadingsBatch

__all__ = ["PikaReadingsPublisher", "pika_url"]

log = logging.getLogger(__name__)

_RETRYABLE = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    pika.exceptions.NackError,
    ConnectionError,
    OSError,
)


def pika_url(url: str) -> str:
    """Accept kombu's spelling of the default vhost (``.../``+``/``) as pika's ``%2F``."""
    scheme, sep, rest = url.partition("://")
    host, slash, vhost = rest.partition("/")
    if slash and vhost in ("", "/"):
        return f"{scheme}{sep}{host}/%2F"
    return url


class PikaReadingsPublisher:
    """Publishes :class:`ReadingsBatch` messages with confirms; reconnects on failure.

    ``publish`` returns once RabbitMQ confirmed the message; after ``max_retries``
    failed attempts it raises :class:`ServiceUnavailable` and the caller still holds the
    batch (nothing is dropped silently).
    """

    def __init__(
        self,
        url: str,
        topology: Topology | None = None,
        *,
        max_retries: int = 8,
        backoff_s: float = 0.25,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._parameters = pika.URLParameters(pika_url(url))
        self._topology = topology or Topology()
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._connection: pika.BlockingConnection | None = None
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None

    def __enter__(self) -> PikaReadingsPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Connect and declare the topology now (otherwise the first publish does)."""
        self._connect()

    def _connect(self) -> pika.adapters.blocking_connection.BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self._connection = pika.BlockingConnection(self._parameters)
        channel = self._connection.channel()
        channel.confirm_delivery()
        topo = self._topology
        channel.exchange_declare(topo.readings_exchange_name, "topic", durable=True)
        channel.exchange_declare(topo.dead_exchange_name, "fanout", durable=True)
        channel.queue_declare(topo.dead_queue_name, durable=True)
        channel.queue_bind(topo.dead_queue_name, topo.dead_exchange_name, routing_key="#")
        channel.queue_declare(
            topo.ingest_queue_name, durable=True, arguments=topo.ingest_queue_arguments
        )
        channel.queue_bind(topo.ingest_queue_name, topo.readings_exchange_name, routing_key="#")
        self._channel = channel
        return channel

    def publish_readings(
        self,
        machine_id: str,
        columns: Sequence[str],
        timestamps: Sequence[datetime],
        values: Sequence[Sequence[float]],
        labels: Sequence[int] | None = None,
        *,
        batch_size: int = 500,
    ) -> int:
        """Publish many readings as batches of ``batch_size``; returns the batch count."""
        if batch_size < 1:
            raise ValueError("batch_size: must be at least 1")
        batches = 0
        for first in range(0, len(timestamps), batch_size):
            last = first + batch_size
            self.publish(
                ReadingsBatch.of_rows(
                    machine_id,
                    columns,
                    timestamps[first:last],
                    values[first:last],
                    None if labels is None else labels[first:last],
                )
            )
            batches += 1
        return batches

    def publish(self, batch: ReadingsBatch) -> None:
        self.publish_raw(batch.machine_id, batch.to_wire(), message_id=str(batch.message_id))

    def publish_raw(self, routing_key: str, body: bytes, *, message_id: str | None = None) -> None:
        """Publish bytes as they are (also used by tests to send malformed messages)."""
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
        )
        delay = self._backoff_s
        for attempt in range(1, self._max_retries + 1):
            try:
                channel = self._connect()
                channel.basic_publish(
                    self._topology.readings_exchange_name,
                    routing_key,
                    body,
                    properties=properties,
                    mandatory=True,
                )
                return
            except pika.exceptions.UnroutableError as exc:
                raise ServiceUnavailable(f"broker: message unroutable ({exc})") from exc
            except (
                pika.exceptions.ProbableAuthenticationError,
                pika.exceptions.ProbableAccessDeniedError,
            ) as exc:
                self._drop_connection()
                raise ServiceUnavailable(f"broker: access refused ({exc})") from exc
            except _RETRYABLE as exc:
                log.warning("publish attempt %d failed: %s; retrying", attempt, exc)
                self._drop_connection()
                if attempt == self._max_retries:
                    raise ServiceUnavailable(
                        f"broker: publish failed after {attempt} attempts ({exc})"
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, self._max_backoff_s)

    def _drop_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):
                connection.close()

    def close(self) -> None:
        self._drop_connection()
