"""Dead-lettering a delivery the consumer gives up on: its reason and raw body recorded
in the store, the message rejected without requeue (which on RabbitMQ routes it to
``<ns>.dead``), so one message never stops ingestion."""

from __future__ import annotations

import logging
from collections.abc import Callable

from kombu.message import Message

from mmlw.store import Store
from mmlw.workers.consumers.decode import delivery_ids, printable, raw_body
from mmlw.workers.consumers.stats import IngestStats
from mmlw.workers.consumers.store_health import store_answers, store_unreachable

__all__ = ["DeadLetters"]

log = logging.getLogger(__name__)


class DeadLetters:
    """Records messages as dead letters and rejects them; ``requeue`` takes them back
    instead while the store cannot be reached (the message is not at fault then)."""

    def __init__(
        self, store: Store, stats: IngestStats, requeue: Callable[[list[Message]], None]
    ) -> None:
        self.store = store
        self.stats = stats
        self.requeue = requeue

    def __call__(self, message: Message, reason: str) -> None:
        """Record ``message`` as a dead letter and reject it without requeue. If the store
        is down, requeue it instead; if the store is up but refuses the record, reject it
        all the same: ``<ns>.dead`` keeps it."""
        routing_key, message_id = delivery_ids(message)
        reason = printable(reason, 2000)
        try:
            self.store.dead_letters.add(
                source="amqp",
                reason=reason,
                body=raw_body(message.body),
                routing_key=routing_key,
                message_id=message_id,
            )
        except Exception as exc:
            if store_unreachable(exc) and not store_answers(self.store):
                log.exception("recording dead letter %s failed; requeueing", message_id)
                self.requeue([message])
                return
            log.exception("the store refused dead letter %s; rejecting it anyway", message_id)
        log.warning("dead-lettered message %s: %s", message_id, reason)
        self.stats.add(dead_letters=1)
        message.reject(requeue=False)
