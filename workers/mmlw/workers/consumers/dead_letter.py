"""Dead-lettering a delivery the consumer gives up on, so one message never stops
ingestion: recorded in the store (the system of record: reason, raw body, ``message_id``
and headers), then copied to ``<ns>.dead`` with its properties and headers and ours
(``x-mmlw-reason``, ``x-mmlw-dead-letter-id``, ...: :mod:`mmlw.messaging.dead_copy`), and
only then acked. If the copy cannot be published the message is rejected without requeue
instead, and RabbitMQ dead-letters it to ``<ns>.dead`` itself: never lost either way."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from kombu.message import Message

from mmlw.messaging.dead_copy import DeadCopy, body_bytes
from mmlw.messaging.dead_queue import DeadQueue
from mmlw.store import Store
from mmlw.workers.consumers.decode import delivery_ids, printable
from mmlw.workers.consumers.stats import IngestStats
from mmlw.workers.consumers.store_health import store_answers, store_unreachable

__all__ = ["DeadLetters", "dead_copy"]

log = logging.getLogger(__name__)


class DeadLetters:
    """Records messages as dead letters, copies them to ``<ns>.dead`` (with ``copies``;
    without, only RabbitMQ's own dead-lettering puts them there) and settles them;
    ``requeue`` takes them back instead while the store cannot be reached (the message
    is not at fault then)."""

    def __init__(
        self,
        store: Store,
        stats: IngestStats,
        requeue: Callable[[list[Message]], None],
        copies: DeadQueue | None = None,
        queue: str = "",
    ) -> None:
        self.store = store
        self.stats = stats
        self.requeue = requeue
        self.copies = copies
        self.queue = queue  # the queue the messages come from, named in their copies

    def __call__(self, message: Message, reason: str) -> None:
        """Record ``message`` as a dead letter, copy it to ``<ns>.dead`` and ack it (or,
        if the copy fails, reject it without requeue). If the store is down, requeue it
        instead; if the store is up but refuses the record, copy it all the same:
        ``<ns>.dead`` keeps it."""
        routing_key, message_id = delivery_ids(message)
        reason = printable(reason, 2000)
        copy = dead_copy(message, reason, self.queue)
        try:
            dead_letter_id = self._record(copy, reason, routing_key, message_id)
        except _StoreDown as down:
            log.error(
                "recording dead letter %s failed; requeueing", message_id, exc_info=down.__cause__
            )
            self.requeue([message])
            return
        log.warning("dead-lettered message %s: %s", message_id, reason)
        self.stats.add(dead_letters=1)
        if self.copies is not None and self.copies.publish(copy.recorded_as(dead_letter_id)):
            message.ack()
        else:
            message.reject(requeue=False)

    def _record(
        self, copy: DeadCopy, reason: str, routing_key: str | None, message_id: str | None
    ) -> int | None:
        """The id of the store's record of the dead letter; None if the store refused it.
        A lost connection is tried once more if the store answers by then (it came back
        while the first try failed); :class:`_StoreDown` if it does not."""
        retried = False
        while True:
            try:
                return self.store.dead_letters.add(
                    source="amqp",
                    reason=reason,
                    body=copy.body,
                    routing_key=routing_key,
                    message_id=message_id,
                    headers=copy.stored_headers(),
                )
            except Exception as exc:
                if store_unreachable(exc):
                    if not store_answers(self.store):
                        raise _StoreDown from exc
                    if not retried:  # it came back while this try failed: once more
                        retried = True
                        continue
                log.exception("the store refused dead letter %s; rejecting it anyway", message_id)
                return None

    def close(self) -> None:
        if self.copies is not None:
            self.copies.close()


class _StoreDown(Exception):
    """The store could not be reached to record a dead letter."""


def dead_copy(message: Message, reason: str, queue: str) -> DeadCopy:
    """The copy of ``message`` for ``<ns>.dead``: its body, properties and headers."""
    info: dict[str, Any] = message.delivery_info or {}
    properties = dict(message.properties or {})
    properties.update(content_type=message.content_type, content_encoding=message.content_encoding)
    return DeadCopy.of(
        body_bytes(message.body, message.content_encoding),
        properties=properties,
        headers=message.headers,
        reason=reason,
        routing_key=info.get("routing_key"),
        exchange=info.get("exchange"),
        queue=queue,
    )
