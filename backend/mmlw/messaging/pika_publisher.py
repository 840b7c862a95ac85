"""The machine side: publish readings to RabbitMQ with pika.

Persistent messages, publisher confirms, batching, reconnect with backoff, waiting out
refusals (the ingest queue at its length limit nacks), and optionally a local spool for
what the broker cannot take. This is also the few lines an integrator copies (with the
machines' broker user, which may publish readings and nothing else: see
:mod:`mmlw.messaging.provision`)::

    from mmlw.messaging.pika_publisher import PikaReadingsPublisher
    with PikaReadingsPublisher("amqp://mmlw-publisher:<password>@127.0.0.1:5672/%2F") as pub:
        pub.publish(ReadingsBatch.of_rows("pump-1", ["Current", "Pressure"],
                                          [timestamp], [[0.81, 1.02]]))
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

import pika
import pika.exceptions

from mmlw.errors import BrokerBusy, ServiceUnavailable
from mmlw.messaging.spool import Spool
from mmlw.messaging.topology import Topology
from mmlw.schemas.readings import ReadingsBatch

__all__ = ["PikaReadingsPublisher", "PublisherStats", "pika_url"]

log = logging.getLogger(__name__)

_CONNECTION_LOST = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    ConnectionError,
    OSError,
)


class _Unreachable(ServiceUnavailable):
    """Connection attempts used up: the broker is down or cannot be reached."""


_TRANSIENT = (BrokerBusy, _Unreachable)  # what the spool keeps; other errors are raised


@dataclass
class PublisherStats:
    """What one publisher has seen (counts of messages or attempts)."""

    confirmed: int = 0  # messages the broker confirmed, spooled ones included
    refused: int = 0  # nacks: the queue was full, the message was sent again later
    connection_failures: int = 0
    spooled: int = 0
    flushed: int = 0  # spooled messages sent and confirmed


def pika_url(url: str) -> str:
    """Accept kombu's spelling of the default vhost (``.../``+``/``) as pika's ``%2F``."""
    scheme, sep, rest = url.partition("://")
    host, slash, vhost = rest.partition("/")
    if slash and vhost in ("", "/"):
        return f"{scheme}{sep}{host}/%2F"
    return url


class PikaReadingsPublisher:
    """Publishes :class:`ReadingsBatch` messages with confirms.

    ``publish`` returns once RabbitMQ confirmed the message. A lost connection is
    retried ``max_retries`` times and a refusal (nack: queue full) ``max_refusals``
    times, waiting ``backoff_s`` doubling up to ``max_backoff_s`` in between. After that
    it raises :class:`ServiceUnavailable` (:class:`BrokerBusy` for refusals) and the
    caller still holds the batch -- unless ``spool_path`` names a local spool
    (:class:`~mmlw.messaging.spool.Spool`): then the batch is kept there and
    ``publish`` returns. Spooled messages go out oldest first, before any newer one, on
    the next publish, on :meth:`connect`, :meth:`flush` and :meth:`close`; while some
    wait, each publish tries the broker once (at most every ``max_backoff_s``) instead
    of waiting out the whole budget. ``SpoolFull`` (a ServiceUnavailable) when full.

    ``declare``: True declares the readings topology (exchange, ingest and dead-letter
    queues; needs configure permission); False only checks, with a passive declare that
    needs no permission, that the readings exchange exists; None (the default) declares
    when the broker user may, and otherwise checks -- so the least-privilege publisher
    user works, and then the ingest consumer (``mmlw ingest``) must have declared the
    topology first (until it has, publishing retries and then raises). A broker user that
    may not publish gets :class:`ServiceUnavailable` at once (403 ACCESS_REFUSED).
    """

    def __init__(
        self,
        url: str,
        topology: Topology | None = None,
        *,
        max_retries: int = 8,
        max_refusals: int = 20,
        backoff_s: float = 0.25,
        max_backoff_s: float = 5.0,
        spool_path: Path | None = None,
        spool_max_bytes: int = 256 * 2**20,
        declare: bool | None = None,
    ) -> None:
        self._parameters = pika.URLParameters(pika_url(url))
        self._topology = topology or Topology()
        self._declare = declare
        self._max_retries = max_retries
        self._max_refusals = max_refusals
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._spool_path = spool_path
        self._spool_max_bytes = spool_max_bytes
        self._spool_handle: Spool | None = None
        self._retry_at = 0.0  # while messages are spooled: no broker attempt before this
        self._connection: pika.BlockingConnection | None = None
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None
        self.stats = PublisherStats()

    def __enter__(self) -> PikaReadingsPublisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def spooled(self) -> int:
        """Messages waiting in the local spool (0 without one; also after :meth:`close`)."""
        if self._spool_path is None:
            return 0
        if self._spool_handle is not None:
            return len(self._spool_handle)
        spool = Spool(self._spool_path, max_bytes=self._spool_max_bytes)
        try:
            return len(spool)
        finally:
            spool.close()

    def connect(self) -> None:
        """Connect and declare the topology now (otherwise the first publish does), then
        send what the spool holds."""
        self._connect()
        self.flush()

    def flush(self) -> int:
        """Send every spooled message, oldest first, each removed once confirmed; returns
        how many were sent. Raises (the rest stays spooled) if the broker cannot take them
        within the retry budget."""
        if self._spool_path is None:
            return 0
        before = self.stats.flushed
        self._drain(quick=False)
        return self.stats.flushed - before

    def _spool(self) -> Spool:
        if self._spool_handle is None:
            assert self._spool_path is not None
            self._spool_handle = Spool(self._spool_path, max_bytes=self._spool_max_bytes)
        return self._spool_handle

    def _connect(self) -> pika.adapters.blocking_connection.BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self._connection = pika.BlockingConnection(self._parameters)
        channel = self._connection.channel()
        if self._declare is not False:
            try:
                self._declare_topology(channel)
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 403 or self._declare:
                    self._drop_connection()
                    raise
                log.info(
                    "broker user may not declare the readings topology (%s); checking that "
                    "%s exists instead",
                    exc.reply_text,
                    self._topology.readings_exchange_name,
                )
                self._declare = False  # from now on: a least-privilege publisher
                channel = self._connection.channel()
        if self._declare is False:  # needs no permission; 404 (retried) until ingest declared it
            channel.exchange_declare(self._topology.readings_exchange_name, passive=True)
        channel.confirm_delivery()
        self._channel = channel
        return channel

    def _declare_topology(self, channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
        topo = self._topology
        channel.exchange_declare(topo.readings_exchange_name, "topic", durable=True)
        channel.exchange_declare(topo.dead_exchange_name, "fanout", durable=True)
        channel.queue_declare(topo.dead_queue_name, durable=True)
        channel.queue_bind(topo.dead_queue_name, topo.dead_exchange_name, routing_key="#")
        try:
            channel.queue_declare(
                topo.ingest_queue_name, durable=True, arguments=topo.ingest_queue_arguments
            )
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._drop_connection()
            if exc.reply_code != 406:
                raise
            raise ServiceUnavailable(
                f"broker: queue {topo.ingest_queue_name} exists with other arguments than "
                f"{topo.ingest_queue_arguments} ({exc.reply_text}); give every process the "
                "same MMLW_BROKER__INGEST_MAX_LENGTH, or delete the queue"
            ) from exc
        channel.queue_bind(topo.ingest_queue_name, topo.readings_exchange_name, routing_key="#")

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
        if self._spool_path is None:
            self._send(routing_key, body, message_id, quick=False)
            return
        spool = self._spool()
        if len(spool) and (time.monotonic() < self._retry_at or not self._drain(quick=True)):
            self._keep(routing_key, body, message_id, "older messages are still spooled")
            return
        try:
            self._send(routing_key, body, message_id, quick=False)
        except _TRANSIENT as exc:
            self._retry_at = time.monotonic() + self._max_backoff_s
            self._keep(routing_key, body, message_id, str(exc))

    def _keep(self, routing_key: str, body: bytes, message_id: str | None, why: str) -> None:
        spool = self._spool()
        spool.put(routing_key, body, message_id)
        self.stats.spooled += 1
        waiting = len(spool)
        log.warning(
            "message %s spooled (%d waiting in %s): %s", message_id, waiting, spool.path, why
        )

    def _drain(self, *, quick: bool) -> bool:
        """Send spooled messages oldest first; False (the rest stays) if the broker is
        down or refusing -- after one attempt when ``quick``, else after the budget."""
        spool = self._spool()
        while chunk := spool.oldest(100):
            for message in chunk:
                try:
                    self._send(message.routing_key, message.body, message.message_id, quick=quick)
                except _TRANSIENT:
                    self._retry_at = time.monotonic() + self._max_backoff_s
                    if quick:
                        return False
                    raise
                spool.remove(message)
                self.stats.flushed += 1
        return True

    def _send(self, routing_key: str, body: bytes, message_id: str | None, *, quick: bool) -> None:
        """One message until confirmed; ``quick``: a single attempt."""
        properties = pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
        )
        delay = self._backoff_s
        failures = refusals = 0
        while True:
            try:
                channel = self._connect()
                channel.basic_publish(
                    self._topology.readings_exchange_name,
                    routing_key,
                    body,
                    properties=properties,
                    mandatory=True,
                )
                self.stats.confirmed += 1
                return
            except pika.exceptions.UnroutableError as exc:
                raise ServiceUnavailable(f"broker: message unroutable ({exc})") from exc
            except pika.exceptions.NackError as exc:  # queue full: the channel stays usable
                refusals += 1
                self.stats.refused += 1
                if quick or refusals >= self._max_refusals:
                    raise BrokerBusy(
                        f"broker: {self._topology.ingest_queue_name} is full, message refused "
                        f"{refusals} time(s)",
                        retry_after_s=self._max_backoff_s,
                    ) from exc
                log.info("message refused (queue full, %d); retrying in %.2fs", refusals, delay)
            except (
                pika.exceptions.ProbableAuthenticationError,
                pika.exceptions.ProbableAccessDeniedError,
            ) as exc:
                self._drop_connection()
                raise ServiceUnavailable(f"broker: access refused ({exc})") from exc
            except _CONNECTION_LOST as exc:
                self._drop_connection()
                if isinstance(exc, pika.exceptions.ChannelClosedByBroker) and exc.reply_code == 403:
                    raise ServiceUnavailable(f"broker: access refused ({exc.reply_text})") from exc
                failures += 1
                self.stats.connection_failures += 1
                if quick or failures >= self._max_retries:
                    raise _Unreachable(
                        f"broker: publish failed after {failures} attempt(s) ({exc!r})"
                    ) from exc
                log.warning("publish attempt %d failed: %r; retrying", failures, exc)
            time.sleep(delay)
            delay = min(delay * 2, self._max_backoff_s)

    def _drop_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):
                connection.close()

    def close(self) -> None:
        """Send what the spool holds if the broker takes it at once, then disconnect."""
        try:
            spool, now = self._spool_handle, time.monotonic()
            if spool is not None and len(spool) and now >= self._retry_at:
                self._drain(quick=True)
        except ServiceUnavailable as exc:
            log.warning("spooled messages not sent on close: %s", exc)
        finally:
            self._drop_connection()
            if self._spool_handle is not None:
                self._spool_handle.close()
                self._spool_handle = None
