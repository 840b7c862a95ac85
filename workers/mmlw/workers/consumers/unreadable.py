"""Deliveries the AMQP client cannot read, found and dead-lettered with pika.

py-amqp decodes a delivery's routing key, properties and header names as UTF-8 while it
reads the frames; one that is not UTF-8 raises in the middle of a frame (and
``UnexpectedFrame`` for the frames after it), so the connection is out of step and the
message would come back forever. :func:`guard_frames` turns that into a connection error
the consumer reconnects after, and :class:`Quarantine` first takes the message out of the
queue with pika, which hands such strings over as bytes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
from amqp.exceptions import RecoverableConnectionError, UnexpectedFrame
from kombu import Connection

from mmlw.messaging.dead_copy import COPIED_PROPERTIES, REASON, DeadCopy, json_safe
from mmlw.messaging.pika_publisher import pika_url
from mmlw.store import Store
from mmlw.workers.consumers.decode import printable
from mmlw.workers.consumers.stats import IngestStats

__all__ = ["Quarantine", "UnreadableDelivery", "guard_frames", "unreadable_fields"]

log = logging.getLogger(__name__)

_STRING_PROPERTIES = (
    "content_type",
    "content_encoding",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "type",
    "user_id",
    "app_id",
    "cluster_id",
)


class UnreadableDelivery(RecoverableConnectionError):
    """The AMQP client could not read a delivery; its connection was dropped unread.

    A connection error of the client's own (so kombu's ``Consumer`` does not try to
    cancel on the dropped connection, and the consumer reconnects)."""


@contextmanager
def guard_frames(connection: Connection) -> Iterator[None]:
    """If the AMQP client fails to read a delivery inside, drop ``connection`` without
    reading another frame (closing it politely would read on and pair one message's
    delivery with the next one's body) and raise :class:`UnreadableDelivery`."""
    try:
        yield
    except (UnicodeDecodeError, UnexpectedFrame) as exc:
        log.exception("the AMQP client could not read a delivery; reconnecting")
        with contextlib.suppress(Exception):
            connection.collect()
        raise UnreadableDelivery(str(exc)) from exc


class Quarantine:
    """Takes the first message of ``queue`` the AMQP client cannot read out of it: reads
    the queue with pika, dead-letters the unreadable message (recorded in the store,
    rejected without requeue) and gives every message before it back. With
    ``dead_exchange``, a readable copy of it (strings decoded, ``x-mmlw-*`` headers added)
    goes there and the message is acked instead, so ``<ns>.dead`` holds only messages
    the AMQP client can read (and sweep: :mod:`mmlw.messaging.dead_queue`)."""

    def __init__(
        self,
        broker_url: str,
        queue: str,
        store: Store,
        stats: IngestStats,
        scan: int,
        dead_exchange: str | None = None,
    ) -> None:
        self.url = pika_url(broker_url)
        self.queue = queue
        self.dead_exchange = dead_exchange
        self.store = store
        self.stats = stats
        self.scan = scan  # how many messages to look at, at most

    def __call__(self) -> bool:
        """Whether it found and recorded one; False if none was among the first ``scan``
        messages, if it could not be recorded, or if looking failed (the broker went
        away, say)."""
        try:
            return self._take_out()
        except Exception:
            log.exception("looking for the unreadable delivery failed")
            return False

    def _take_out(self) -> bool:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        try:
            channel = connection.channel()
            readable = 0  # the delivery tag of the last readable message taken
            try:
                for _ in range(self.scan):
                    method, properties, body = channel.basic_get(self.queue)
                    if method is None:
                        return False
                    fields = unreadable_fields(method, properties)
                    if not fields:
                        readable = method.delivery_tag
                        continue
                    copy = _readable_copy(method, properties, body, fields, self.queue)
                    recorded, dead_letter_id = self._record(copy)
                    if recorded and self._copied(channel, copy.recorded_as(dead_letter_id)):
                        channel.basic_ack(method.delivery_tag)
                    else:
                        channel.basic_reject(method.delivery_tag, requeue=not recorded)
                    return recorded
                return False
            finally:
                if readable:
                    channel.basic_nack(readable, multiple=True, requeue=True)
        finally:
            connection.close()

    def _record(self, copy: DeadCopy) -> tuple[bool, int | None]:
        """Record the unreadable message as a dead letter: whether the store took it,
        and its id."""
        reason = str(copy.headers[REASON])
        try:
            dead_letter_id = self.store.dead_letters.add(
                source="amqp",
                reason=reason,
                body=copy.body,
                routing_key=copy.routing_key or None,
                message_id=copy.message_id,
                headers=copy.stored_headers(),
            )
        except Exception:
            log.exception("recording unreadable message %s failed", copy.message_id)
            return False, None
        log.warning("dead-lettered message %s: %s", copy.message_id, reason)
        self.stats.add(dead_letters=1)
        return True, dead_letter_id

    def _copied(self, channel: Any, copy: DeadCopy) -> bool:
        """Publish ``copy`` to the dead exchange, confirmed; False if there is none or
        the broker did not take it (the original is then rejected to it instead)."""
        if self.dead_exchange is None:
            return False
        try:
            channel.confirm_delivery()
            properties = pika.BasicProperties(
                delivery_mode=2, headers=copy.headers, **copy.properties
            )
            channel.basic_publish(self.dead_exchange, copy.routing_key, copy.body, properties)
        except Exception:
            log.exception("copying unreadable message %s failed", copy.message_id)
            return False
        return True


def unreadable_fields(method: Any, properties: Any) -> list[str]:
    """The names of a pika delivery's strings that are not UTF-8 (pika hands them over as
    bytes): routing key, exchange, properties, header names and values (a header's bytes
    that are UTF-8 are a byte array, which py-amqp reads).

    >>> from pika.spec import Basic, BasicProperties
    >>> unreadable_fields(Basic.GetOk(routing_key=b"\\xffkey", exchange="x"),
    ...                   BasicProperties(message_id="1", headers={"h": b"\\xc3("}))
    ['routing_key', 'headers']
    """
    fields = [
        name for name in ("routing_key", "exchange") if isinstance(getattr(method, name), bytes)
    ]
    fields += [name for name in _STRING_PROPERTIES if isinstance(getattr(properties, name), bytes)]
    headers = properties.headers or {}
    if any(isinstance(k, bytes) or _not_utf8(v) for k, v in headers.items()):
        fields.append("headers")
    return fields


def _readable_copy(
    method: Any, properties: Any, body: bytes, fields: list[str], queue: str
) -> DeadCopy:
    """The copy of an unreadable delivery for ``<ns>.dead``: its strings decoded (bytes
    that are not UTF-8 replaced), its headers JSON-safe, and why."""
    readable = {name: _storable(getattr(properties, name, None)) for name in COPIED_PROPERTIES}
    readable["priority"] = properties.priority
    readable["timestamp"] = properties.timestamp
    return DeadCopy.of(
        bytes(body),
        properties=readable,
        headers=json_safe(properties.headers or {}),
        reason=f"amqp: {', '.join(fields)} not valid UTF-8 (unreadable for the consumer)",
        routing_key=_storable(method.routing_key),
        exchange=_storable(method.exchange),
        queue=queue,
    )


def _not_utf8(value: object) -> bool:
    if not isinstance(value, bytes):
        return False
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _storable(value: str | bytes | None) -> str | None:
    """A routing key or property as storable text (bytes decoded, invalid ones replaced)."""
    if value is None or not isinstance(value, str | bytes):
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return printable(text, 255)
