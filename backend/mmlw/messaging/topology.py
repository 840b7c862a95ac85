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
    exchange  <ns>.score      direct, durable; stored batches to stream, by machine
    queues    <ns>.score.<k>  k = 0 .. score_partitions - 1; quorum queues with a single
                              active consumer: one scorer owns partition k at a time
    exchange  <ns>.scorers    fanout, transient: the scorers' load reports to each other
    queues    <ns>.scorers.<id>  one per scorer, exclusive: the reports it hears

A machine's partition is ``crc32(machine id) % score_partitions``
(:meth:`Topology.partition_of`): the same in every process, on every host.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from mmlw.settings import INGEST_MAX_LENGTH, SCORE_PARTITIONS, BrokerSettings

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
    score_partitions: int = SCORE_PARTITIONS

    @classmethod
    def from_settings(cls, broker: BrokerSettings) -> Topology:
        return cls(broker.namespace, broker.ingest_max_length, broker.score_partitions)

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

    # the partitioned scoring path ---------------------------------------------------------
    def partition_of(self, machine_id: str) -> int:
        """The partition whose scorer streams ``machine_id`` (stable across processes,
        hosts and Python versions, unlike ``hash``).

        >>> Topology(score_partitions=8).partition_of("pump-1")
        6
        """
        return zlib.crc32(machine_id.encode()) % self.score_partitions

    @property
    def score_exchange_name(self) -> str:
        return f"{self.namespace}.score"

    def score_queue_name(self, partition: int) -> str:
        if not 0 <= partition < self.score_partitions:
            raise ValueError(f"partition {partition} not in 0..{self.score_partitions - 1}")
        return f"{self.namespace}.score.{partition}"

    @property
    def score_queue_names(self) -> list[str]:
        return [self.score_queue_name(k) for k in range(self.score_partitions)]

    @property
    def scorers_exchange_name(self) -> str:
        return f"{self.namespace}.scorers"

    SCORE_QUEUE_ARGUMENTS: ClassVar[dict[str, Any]] = {
        "x-queue-type": "quorum",  # replicated on a cluster; survives a node
        "x-single-active-consumer": True,  # one scorer at a time; the next takes over
    }

    @property
    def queue_names(self) -> list[str]:
        """Every queue of the namespace (Celery's control and event queues aside)."""
        return [
            self.ingest_queue_name,
            self.dead_queue_name,
            *(self.task_queue_name(kind) for kind in TASK_QUEUES),
            *self.score_queue_names,
        ]

    @property
    def exchange_names(self) -> list[str]:
        """Every exchange of the namespace (Celery's control and event exchanges aside)."""
        return [
            self.readings_exchange_name,
            self.dead_exchange_name,
            *(self.task_queue_name(kind) for kind in TASK_QUEUES),
            self.score_exchange_name,
            self.scorers_exchange_name,
        ]

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

    def score_exchange(self) -> Exchange:
        from kombu import Exchange

        return Exchange(self.score_exchange_name, type="direct", durable=True)

    def score_queue(self, partition: int) -> Queue:
        from kombu import Queue

        name = self.score_queue_name(partition)
        return Queue(
            name,
            exchange=self.score_exchange(),
            routing_key=name,
            durable=True,
            queue_arguments=dict(self.SCORE_QUEUE_ARGUMENTS),
        )

    def score_queues(self) -> list[Queue]:
        return [self.score_queue(k) for k in range(self.score_partitions)]

    def scorer_inbox(self, scorer_id: str) -> Queue:
        """Where one scorer hears the others' load reports (gone with its connection)."""
        from kombu import Exchange, Queue

        exchange = Exchange(self.scorers_exchange_name, type="fanout", durable=False)
        return Queue(
            f"{self.scorers_exchange_name}.{scorer_id}",
            exchange=exchange,
            durable=False,
            exclusive=True,
            auto_delete=True,
        )

    def declare(self, channel: Any) -> None:
        """Declare the readings path on a kombu channel (idempotent)."""
        for queue in (self.dead_queue(), self.ingest_queue()):
            queue.bind(channel).declare()
