"""Publishes readings batches with kombu: used by the HTTP API and the in-process demo.

On RabbitMQ the connection uses publisher confirms, so :meth:`publish` returns only after
the broker has taken the message; messages are persistent. A refusal (nack: the ingest
queue is at its length limit) raises :class:`BrokerBusy` at once -- the HTTP API answers
503 with Retry-After and the client sends the same message again later.
"""

from __future__ import annotations

import contextlib
import threading

from amqp.exceptions import MessageNacked
from kombu import Connection, Producer

from mmlw.errors import BrokerBusy, ServiceUnavailable
from mmlw.messaging.dispatch import transport_options
from mmlw.messaging.topology import Topology
from mmlw.schemas.readings import ReadingsBatch

__all__ = ["KombuReadingsPublisher"]


class KombuReadingsPublisher:
    """Thread-safe publisher to ``<ns>.readings`` (routing key = machine id)."""

    def __init__(
        self,
        broker_url: str,
        topology: Topology,
        confirm_timeout_s: float = 10.0,
        retry_after_s: float = 1.0,
    ) -> None:
        self._topology = topology
        self._retry_after_s = retry_after_s
        self._connection = Connection(
            broker_url, transport_options=transport_options(broker_url), connect_timeout=5
        )
        self._lock = threading.Lock()
        self._producer: Producer | None = None
        self._timeout = confirm_timeout_s

    def _ensure_producer(self) -> Producer:
        if self._producer is None:
            channel = self._connection.channel()
            self._topology.declare(channel)
            self._producer = Producer(channel, exchange=self._topology.readings_exchange())
        return self._producer

    def publish(self, batch: ReadingsBatch) -> None:
        body = batch.to_wire()
        with self._lock:
            try:
                self._publish_retrying(batch, body)
            except MessageNacked as exc:
                raise BrokerBusy(
                    f"broker: queue {self._topology.ingest_queue_name} is full and refused the "
                    "batch; send it again later",
                    retry_after_s=self._retry_after_s,
                ) from exc

    def _publish_retrying(self, batch: ReadingsBatch, body: bytes) -> None:
        """Once, and once more on a fresh connection if the first was lost."""
        try:
            self._publish_once(batch, body)
        except MessageNacked:
            raise
        except (*self._connection.recoverable_connection_errors, OSError):
            self._reset()
            try:
                self._publish_once(batch, body)
            except MessageNacked:
                raise
            except Exception as exc:
                self._reset()
                raise ServiceUnavailable(f"broker: cannot publish ({exc})") from exc

    def _publish_once(self, batch: ReadingsBatch, body: bytes) -> None:
        producer = self._ensure_producer()
        producer.publish(
            body,
            routing_key=batch.machine_id,
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            message_id=str(batch.message_id),
            timeout=self._timeout,
        )

    def _reset(self) -> None:
        self._producer = None
        with contextlib.suppress(Exception):
            self._connection.close()
        self._connection = self._connection.clone()

    def close(self) -> None:
        with self._lock:
            self._producer = None
            self._connection.release()
