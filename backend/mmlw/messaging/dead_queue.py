"""``<ns>.dead`` kept in step with the store's dead letters, through kombu.

The store is the system of record; ``<ns>.dead`` holds a copy of each AMQP dead letter
(:mod:`.dead_copy`) naming its record (``x-mmlw-dead-letter-id``). Nothing is ever taken
out of ``<ns>.dead`` that the store does not account for:

- the ingest consumer records a message first, then publishes its copy here (confirmed)
  and only then acks the original; if the copy cannot be published it rejects the
  original instead, and RabbitMQ dead-letters it here itself (``x-dead-letter-exchange``
  of ``<ns>.ingest``: properties and headers kept, ``x-death`` added);
- a purge deletes records, then :meth:`DeadQueue.forget` sweeps the queue and removes the
  copies whose record is gone -- every copy whose id is no longer in the store, so a
  sweep that failed (the broker was away) is made good by the next purge -- and the
  copies without an id whose ``message_id`` was among the records purged (rejected by the
  broker itself, or from before copies were made);
- a replay marks the record, then :meth:`DeadQueue.mark_replayed` replaces its copy with
  one that says so (the new copy is confirmed before the old one is acked).

A sweep reads the queue with ``basic.get`` and holds what it keeps unacknowledged, so no
message is read twice, then gives those back in their places (``basic.recover``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from mmlw.messaging.dead_copy import COPIED_PROPERTIES, DeadCopy, body_bytes
from mmlw.messaging.dispatch import transport_options
from mmlw.messaging.topology import Topology
from mmlw.settings import BrokerSettings

__all__ = ["DeadQueue", "Decision", "Swept"]

log = logging.getLogger(__name__)

Decision = Literal["keep", "remove"] | DeadCopy  # a copy: replace the message with it


@dataclass(frozen=True)
class Swept:
    """What a sweep of ``<ns>.dead`` did; ``complete``: it looked at every message."""

    removed: int = 0
    replaced: int = 0
    kept: int = 0
    complete: bool = False


class DeadQueue:
    """Publishes dead-letter copies to ``<ns>.dead`` and sweeps it. One per thread."""

    def __init__(
        self, broker_url: str, topology: Topology, *, confirm_timeout_s: float = 10.0
    ) -> None:
        self.broker_url = broker_url
        self.topology = topology
        self.confirm_timeout_s = confirm_timeout_s
        self._connection: Any = None
        self._channel: Any = None

    @classmethod
    def from_settings(cls, broker: BrokerSettings) -> DeadQueue:
        return cls(broker.url, Topology.from_settings(broker))

    def _connect(self) -> Any:
        from kombu import Connection

        connection = Connection(
            self.broker_url,
            transport_options=transport_options(self.broker_url),
            connect_timeout=5,
        )
        connection.ensure_connection(max_retries=1)
        return connection

    # publishing ----------------------------------------------------------------------
    def publish(self, copy: DeadCopy) -> bool:
        """Publish ``copy`` to ``<ns>.dead``; True once the broker confirmed it, False if
        it could not (logged; the caller keeps the original)."""
        for attempt in (1, 2):  # once more on a fresh connection if the first was lost
            try:
                if self._channel is None:
                    self._connection = self._connect()
                    self._channel = self._connection.channel()
                    self.topology.dead_queue()(self._channel).declare()
                self._publish_on(self._channel, copy)
                return True
            except Exception:
                self.close()
                if attempt == 2:
                    log.exception("publishing the copy of message %s failed", copy.message_id)
        return False

    def _publish_on(self, channel: Any, copy: DeadCopy) -> None:
        given = ("priority", "content_type", "content_encoding")  # arguments of their own
        properties = {k: v for k, v in copy.properties.items() if k not in given}
        properties["delivery_mode"] = 2
        message = channel.prepare_message(
            copy.body,
            copy.properties.get("priority"),
            copy.properties.get("content_type"),
            copy.properties.get("content_encoding"),
            dict(copy.headers),
            properties,
        )
        channel.basic_publish(message, self.topology.dead_exchange_name, copy.routing_key)

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.release()

    # sweeping ------------------------------------------------------------------------
    def forget(
        self,
        purged: Iterable[tuple[int, str | None]],
        stored: Callable[[Collection[int]], set[int]],
    ) -> Swept:
        """Remove the copies of dead letters no longer in the store: those whose id
        ``stored`` (which of these ids the store still holds) does not return, and those
        without an id whose ``message_id`` is among the ``purged`` records (id,
        message_id)."""
        purged_message_ids = {m for _, m in purged if m}

        def decide(copy: DeadCopy) -> Decision:
            dead_letter_id = copy.dead_letter_id
            if dead_letter_id is not None:
                return "keep" if stored([dead_letter_id]) else "remove"
            if copy.message_id is not None and copy.message_id in purged_message_ids:
                return "remove"
            return "keep"

        return self.sweep(decide)

    def mark_replayed(self, dead_letter_id: int, replayed_at: datetime, count: int) -> Swept:
        """Replace the copy of dead letter ``dead_letter_id`` with one marked replayed."""

        def decide(copy: DeadCopy) -> Decision:
            if copy.dead_letter_id != dead_letter_id:
                return "keep"
            return copy.replayed(replayed_at, count)

        return self.sweep(decide)

    def sweep(self, decide: Callable[[DeadCopy], Decision]) -> Swept:
        """Look at each message in ``<ns>.dead`` once and remove, replace or keep it as
        ``decide`` says. Never raises: a sweep that could not finish says so."""
        removed = replaced = kept = 0
        try:
            connection = self._connect()
        except Exception as exc:
            log.warning("sweeping %s: no broker (%s)", self.topology.dead_queue_name, exc)
            return Swept()
        try:
            channel = connection.channel()
            queue = self.topology.dead_queue()(channel)
            try:
                _, depth, _ = queue.queue_declare(passive=True)
            except connection.channel_errors:
                return Swept(complete=True)  # no such queue: nothing to sweep
            try:
                for _ in range(int(depth)):
                    message = queue.get(no_ack=False)
                    if message is None:
                        break
                    verdict = decide(copy_of(message))
                    if verdict == "keep":
                        kept += 1
                        continue
                    if isinstance(verdict, DeadCopy):
                        self._publish_on(channel, verdict)  # confirmed before the ack
                        replaced += 1
                    else:
                        removed += 1
                    message.ack()
            finally:
                channel.basic_recover(requeue=True)  # what was kept, back in its place
            return Swept(removed, replaced, kept, complete=True)
        except Exception:
            log.exception("sweeping %s failed", self.topology.dead_queue_name)
            with contextlib.suppress(Exception):
                connection.collect()  # drop it unread: the broker requeues what it held
            connection = None
            return Swept(removed, replaced, kept)
        finally:
            if connection is not None:
                with contextlib.suppress(Exception):
                    connection.release()


def copy_of(message: Any) -> DeadCopy:
    """A message read from ``<ns>.dead`` as a :class:`DeadCopy` (its headers as they are)."""
    properties = dict(message.properties or {})
    properties.update(content_type=message.content_type, content_encoding=message.content_encoding)
    kept = {k: properties[k] for k in COPIED_PROPERTIES if properties.get(k) is not None}
    routing_key = (message.delivery_info or {}).get("routing_key") or ""
    body = body_bytes(message.body, message.content_encoding)
    return DeadCopy(body, routing_key, kept, dict(message.headers or {}))
