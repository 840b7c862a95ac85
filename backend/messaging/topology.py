"""Every exchange and queue, declared in one place.

Names derive from one namespace (``mmlw`` by default) so a test session can run beside a
live system on the same broker::

    exchange  <ns>.readings   topic, durable; routing key = machine id
    queue     <ns>.ingest     durable; bound with '#'; dead-letters to <ns>.dead
    exchange  <ns>.dead       fanout, durable
    queue     <ns>.dead       durable; rejected readings, kept for inspection and replay
    queues    <ns>.train, <ns>.predict, <ns>.notify   Celery work
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kombu import Exchange, Queue

__all__ = ["TASK_QUEUES", "Topology"]

TASK_QUEUES = ("train", "predict", "notify")


@dataclass(frozen=True)
class Topology:
    namespace: str = "mmlw"

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
        return {"x-dead-letter-exchange": self.dead_exchange_name}

    def task_queue_name(self, kind: str) -> str:
        if kind not in TASK_QUEUES:
            raise ValueError(f"unknown task queue {kind!r}; expected one of {TASK_QUEUES}")
        return f"{self.namespace}.{kind}"

    # kombu objects -----------------------------------------------------------------
    def readings_exchange(self) -> Exchange:
        return Exchange(self.readings_exchange_name, type="topic", durable=True)

    def dead_exchange(self) -> Exchange:
        return Exchange(self.dead_exchange_name, type="fanout", durable=True)

    def ingest_queue(self) -> Queue:
        return Queue(
            self.ingest_queue_name,
            exchange=self.readings_exchange(),
            routing_key="#",
            durable=True,
            queue_arguments=self.ingest_queue_arguments,
        )

    def dead_queue(self) -> Queue:
        return Queue(
            self.dead_queue_name, exchange=self.dead_exchange(), routing_key="#", durable=True
        )

    def task_queues(self) -> list[Queue]:
        return [
            Queue(
                self.task_queue_name(kind),
                exchange=Exchange(self.task_queue_name(kind), type="direct", durable=True),
                routing_key=self.task_queue_name(kind),
                durable=True,
            )
            for kind in TASK_QUEUES
        ]

    def declare(self, channel: Any) -> None:
        """Declare the readings path on a kombu channel (idempotent)."""
        for queue in (self.dead_queue(), self.ingest_queue()):
            queue.bind(channel).declare()
