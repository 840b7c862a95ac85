"""Every exchange and queue, declared in one place.

Names derive from one namespace (``mmlw`` by default) so a test session can run beside a
live system on the same broker::

    exchange  <ns>.readings   topic, durable; routing key = machine id
    queue     <ns>.ingest     durable; bound with '#'; dead-letters to <ns>.dead; at most
                              ``ingest_max_length`` messages, then publishes are refused
                              (x-overflow reject-publish: the publisher gets a nack)
    exchange  <ns>.dead       fanout, durable
    queue     <ns>.dead       durable; rejected readings, kept for inspection and replay: a
                              copy of each dead letter of the store (dead_queue.py)
    queues    <ns>.train, <ns>.predict, <ns>.notify   Celery work
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmlw.settings import INGEST_MAX_LENGTH, BrokerSettings

if TYPE_CHECKING:  # kombu is imported where its objects are built: the pika publisher
    from kombu import Exchange, Queue  # (a machine's light package) has no kombu

__all__ = ["TASK_QUEUES", "Topology"]

TASK_QUEUES = ("train", "predict", "notify")


@dataclass(frozen=True)
class Topology:
    """Names and arguments of the broker objects of one namespace.

    Queue arguments are part of a queue's identity on RabbitMQ: every process declaring
    ``<ns>.ingest`` must use the same ``ingest_max_length`` (build it with
    :meth:`from_settings`), or the broker refuses the declaration (PRECONDITION_FAILED).
    """

    namespace: str = "mmlw"
    ingest_max_length: int | None = INGEST_MAX_LENGTH

    @classmethod
    def from_settings(cls, broker: BrokerSettings) -> Topology:
        return cls(broker.namespace, broker.ingest_max_length)

    @property
    def readings_exchange_name(self) -> str:
        return f"{self.namespace}.readings"

    @property
    def ingest_queue_name(self) -> str:
        return f"{self.namespace}.ingest"

    @property
    def dead_exchange_name(self) -> str:
        return f"{self.namespace}.dead"

    @property
    def dead_queue_name(self) -> str:
        return f"{self.namespace}.dead"

    @property
    def ingest_queue_arguments(self) -> dict[str, Any]:
        """The one source of ``<ns>.ingest``'s arguments (kombu and pika declare it)."""
        arguments: dict[str, Any] = {"x-dead-letter-exchange": self.dead_exchange_name}
        if self.ingest_max_length is not None:
            arguments |= {"x-max-length": self.ingest_max_length, "x-overflow": "reject-publish"}
        return arguments

    def task_queue_name(self, kind: str) -> str:
        if kind not in TASK_QUEUES:
            raise ValueError(f"unknown task queue {kind!r}; expected one of {TASK_QUEUES}")
        return f"{self.namespace}.{kind}"

    # kombu objects -----------------------------------------------------------------
    def readings_exchange(self) -> Exchange:
        from kombu import Exchange

        return Exchange(self.readings_exchange_name, type="topic", durable=True)

    def dead_exchange(self) -> Exchange:
        from kombu import Exchange

        return Exchange(self.dead_exchange_name, type="fanout", durable=True)

    def ingest_queue(self) -> Queue:
        from kombu import Queue

        return Queue(
            self.ingest_queue_name,
            exchange=self.readings_exchange(),
            routing_key="#",
            durable=True,
            queue_arguments=self.ingest_queue_arguments,
        )

    def dead_queue(self) -> Queue:
        from kombu import Queue

        return Queue(
            self.dead_queue_name, exchange=self.dead_exchange(), routing_key="#", durable=True
        )

    def task_queue(self, kind: str) -> Queue:
        from kombu import Exchange, Queue

        name = self.task_queue_name(kind)
        return Queue(
            name,
            exchange=Exchange(name, type="direct", durable=True),
            routing_key=name,
            durable=True,
        )

    def task_queues(self) -> list[Queue]:
        return [self.task_queue(kind) for kind in TASK_QUEUES]

    def declare(self, channel: Any) -> None:
        """Declare the readings path on a kombu channel (idempotent)."""
        for queue in (self.dead_queue(), self.ingest_queue()):
            queue.bind(channel).declare()
