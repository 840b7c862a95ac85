"""Micro-batching for the ingest consumer: which decoded messages are written together,
when, and how a written buffer is cut into predict tasks.

A buffer is due when it holds ``max_messages`` messages or ``max_readings`` readings
(:attr:`Buffer.full`), when it has waited ``delay_s`` for more messages, or when its
first message is ``max_hold_s`` old (:meth:`Buffer.due`). Only waiting counts towards
the delay -- the consumer reports it with :meth:`Buffer.wait` -- not the time spent
decoding messages that were already there, so behind a backlog buffers fill to their size
limits. The caller owns the clock: every method that needs the time is given ``now``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kombu.message import Message

from mmlw.schemas.readings_arrays import ReadingsArrays
from mmlw.workers.consumers.decode import delivery_ids

__all__ = ["Buffer", "Pending", "predict_tasks"]


@dataclass(frozen=True)
class Pending:
    """A decoded message waiting to be stored, and acked once it is."""

    message: Message
    batch: ReadingsArrays

    @property
    def message_id(self) -> str | None:
        return delivery_ids(self.message)[1]


class Buffer:
    """Decoded messages waiting to be written in one transaction.

    >>> from types import SimpleNamespace as Item
    >>> buffer = Buffer(max_messages=3, max_readings=100, delay_s=0.05, max_hold_s=0.2)
    >>> buffer.add(Item(batch=[0] * 10), now=1.0), buffer.due(now=1.1)
    (False, False)
    >>> buffer.wait(0.05); buffer.due(now=1.1)
    True
    >>> buffer.add(Item(batch=[0] * 95), now=1.1), len(buffer.take()), len(buffer)
    (True, 2, 0)
    """

    def __init__(
        self, *, max_messages: int, max_readings: int, delay_s: float, max_hold_s: float
    ) -> None:
        self.max_messages = max_messages
        self.max_readings = max_readings
        self.delay_s = delay_s
        self.max_hold_s = max_hold_s
        self.items: list[Pending] = []
        self.readings = 0
        self._oldest = 0.0  # when the first message came
        self._waited = 0.0  # how long the buffer has waited for more messages

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: Pending, now: float) -> bool:
        """Buffer ``item``; whether the buffer is full now."""
        if not self.items:
            self._oldest, self._waited = now, 0.0
        self.items.append(item)
        self.readings += len(item.batch)
        return self.full

    @property
    def full(self) -> bool:
        return len(self.items) >= self.max_messages or self.readings >= self.max_readings

    def wait(self, seconds: float) -> None:
        """The buffer waited ``seconds`` more for another message."""
        self._waited += seconds

    def due(self, now: float) -> bool:
        """Whether to write the buffer now, however full: it waited ``delay_s`` in all, or
        its first message came ``max_hold_s`` ago."""
        return bool(self.items) and (
            self._waited >= self.delay_s or now - self._oldest >= self.max_hold_s
        )

    def take(self) -> list[Pending]:
        """Empty the buffer; what it held."""
        items, self.items, self.readings = self.items, [], 0
        return items


def predict_tasks(
    batches: list[tuple[int, str]], size: int, partition_of: Callable[[str], int] | None = None
) -> list[list[tuple[int, str]]]:
    """The scoring messages of a written buffer: ``(batch id, machine id)`` pairs grouped
    machine by machine into messages of at most ``size`` batches, a machine split across
    messages only when its batches do not fit in one of their own, and never two
    partitions (``partition_of``) in one message. A message runs its machines' alert
    rules and drift test once each, so the fewer machines per message, the less of that
    work per batch.

    >>> ids = lambda tasks: [[b for b, _ in t] for t in tasks]
    >>> ids(predict_tasks([(1, "a"), (2, "b"), (3, "a"), (4, "c"), (5, "b")], size=3))
    [[1, 3], [2, 5, 4]]
    >>> ids(predict_tasks([(1, "a"), (2, "a"), (3, "a"), (4, "b")], size=2))
    [[1, 2], [3, 4]]
    >>> partitions = {"a": 1, "b": 0, "c": 1}
    >>> ids(predict_tasks([(1, "a"), (2, "b"), (3, "c")], size=8, partition_of=partitions.get))
    [[2], [1, 3]]
    """
    part = partition_of or (lambda _: 0)
    per_machine: dict[str, list[tuple[int, str]]] = {}
    for batch_id, machine_id in batches:
        per_machine.setdefault(machine_id, []).append((batch_id, machine_id))
    tasks: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    current_partition: int | None = None
    for machine_id in sorted(per_machine, key=lambda m: (part(m), m)):
        pairs = per_machine[machine_id]
        partition = part(machine_id)
        if current and (len(current) + len(pairs) > size or partition != current_partition):
            tasks.append(current)
            current = []
        current_partition = partition
        while len(current) + len(pairs) > size:  # a machine larger than a message
            room = size - len(current)
            tasks.append(current + pairs[:room])
            current, pairs = [], pairs[room:]
        current = current + pairs
    if current:
        tasks.append(current)
    return tasks
