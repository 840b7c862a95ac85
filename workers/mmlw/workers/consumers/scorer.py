"""The scorer: streams the machines of the partitions it owns, in the order their batches
were stored.

Ownership is the broker's. Each partition is a quorum queue ``<ns>.score.<k>`` with
``x-single-active-consumer``: every scorer subscribes to every partition, RabbitMQ hands
each partition's messages to one of them only (the first to subscribe), and when that
scorer's connection goes -- a crash, a SIGKILL, a lost host -- it makes the next one in line
the partition's consumer, with the unacknowledged message first. Nothing here is a lock:
the stream checkpoint's compare-and-set (:func:`~mmlw.services.streaming.advance`) still
guarantees each batch is streamed once, so a handover can only cost time, never scores.

Spreading. A single active consumer is whoever subscribed first, so a scorer started
before the others would own everything. Every ``rebalance_s`` each scorer tells the
others (fanout exchange ``<ns>.scorers``, one small queue per scorer) which partitions it
streamed in its last :data:`BUSY_REPORTS` report intervals (a minute by default): its
busy ones. The memory is long so that neither a round of seconds under a backlog nor a
pause in the readings makes partitions look idle for a while, with scorers handing them on
and taking them back on each other's stale reports: each move costs the new owner a model
load per machine (~60 on a fleet of 1,000), and after a pause between two load phases
such moves had held up rounds for seconds. From the reports it hears (a scorer not heard
from for three rounds is gone) every scorer sees the same busy partitions and the same
number of scorers; one holding more busy partitions than its fair share,
``ceil(busy / scorers)``, lets go of the surplus by subscribing again, at the end of the
line, and the next scorer in line takes each over. The partitions it handed on count as
busy in its next round, so reports that are one round late move nothing back. Reports
only balance load: ownership stays the broker's, and a lost report costs balance, never
order.

Rounds. The messages in hand (at most ``prefetch`` per partition) are streamed as one
round once no partition delivers within a few milliseconds: partitions hold disjoint
machines and a machine is streamed in stored order up to the newest batch any of them
names, so the round keeps each machine's order, and the store's per-round costs
(checkpoints, pending batches, drift states, recent scores, open alerts: a few queries
each) are paid once for the machines of all of them. Under light load a round is one
message; when a backlog builds, a round takes several messages of each partition, so a
machine's per-round work (its checkpoint, drift state and alert rules) is done once for
several of its batches: on a fleet of 1,000 machines that work, not the scoring, is most
of a round.

A message is acknowledged after its batches are streamed and their alert rules run. A
store that cannot be reached is waited for (the partition waits with it: later batches
must not overtake); any other error is logged and the message acknowledged, as a failed
predict task would be: the machine's next message streams the same batches again (a
stream continues from its checkpoint up to the newest batch named).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from kombu import Connection, Consumer, Producer
from kombu.message import Message

from mmlw.errors import ServiceUnavailable
from mmlw.messaging.broker_check import BrokerWaitLog
from mmlw.messaging.topology import Topology

__all__ = ["BUSY_REPORTS", "PartitionScorer", "parse_score_message", "surplus"]

log = logging.getLogger(__name__)

MAX_BATCH_IDS = 100_000  # far above a message's batches_per_task; a bound, not a limit
_WAIT_S = 1.0  # longest wait for a delivery before heartbeats and rebalancing are looked at
_GATHER_S = 0.002  # how long a round waits for other partitions' deliveries once one came
_RESTART_DELAY_S = 1.0
_RETRY_MAX_S = 30.0
#: a partition streamed in this many of a scorer's last report intervals counts as busy
BUSY_REPORTS = 12


class _Stopped(Exception):
    """:meth:`PartitionScorer.stop` was called while waiting for the broker."""


def parse_score_message(body: bytes | str) -> list[int]:
    """The batch ids of a scoring message (``{"batch_ids": [1, 2]}``).

    >>> parse_score_message(b'{"batch_ids": [3, 1]}')
    [3, 1]
    >>> parse_score_message(b'{"batch_ids": ["x"]}')
    Traceback (most recent call last):
    ValueError: batch_ids: expected a list of positive integers
    """
    data = json.loads(body)
    ids = data.get("batch_ids") if isinstance(data, dict) else None
    if (
        not isinstance(ids, list)
        or len(ids) > MAX_BATCH_IDS
        or not all(type(i) is int and i > 0 for i in ids)
    ):
        raise ValueError("batch_ids: expected a list of positive integers")
    return ids


def surplus(mine: Sequence[int], busy: int, scorers: int) -> int:
    """How many of its busy partitions (``mine``) a scorer lets go of: those above its
    fair share of the ``busy`` partitions among ``scorers`` live scorers -- once they are
    more than an eighth of that share (a move costs the new owner a model load for each
    of the partition's machines, ~60 on a fleet of 1,000: 9 against 7 partitions is not
    worth it; 2 against 0 is).

    >>> surplus(range(4), 4, 2), surplus(range(2), 4, 2), surplus(range(7), 16, 3)
    (2, 0, 1)
    >>> surplus(range(9), 16, 2), surplus(range(10), 16, 2), surplus(range(2), 2, 2)
    (0, 2, 1)
    """
    share = math.ceil(busy / max(1, scorers))
    extra = len(mine) - share
    return extra if extra > share // 8 else 0


class PartitionScorer:
    """Consumes every ``<ns>.score.<k>`` until :meth:`stop`; one per thread or process.

    ``handle(batch_ids)`` does the work (:func:`~mmlw.workers.predict_work.predict_batches`).
    ``connection`` is a template: :meth:`run` connects clones of it, again after a loss.
    """

    def __init__(
        self,
        connection: Connection,
        topology: Topology,
        handle: Callable[[list[int]], object],
        *,
        rebalance_s: float = 5.0,
        prefetch: int = 4,
    ) -> None:
        if prefetch < 1:
            raise ValueError(f"prefetch: must be at least 1, got {prefetch}")
        self.prefetch = prefetch
        self.connection = connection
        self.topology = topology
        self.handle = handle
        self.rebalance_s = rebalance_s
        self.held: set[int] = set()  # partitions whose active consumer this scorer is
        self.id = uuid.uuid4().hex[:12]
        self._recent: set[int] = set()  # partitions streamed since the last report
        self._streamed: deque[set[int]] = deque(maxlen=BUSY_REPORTS)  # per report before
        self._handed: set[int] = set()  # partitions handed on at the last rebalance
        self._peers: dict[str, tuple[float, set[int]]] = {}  # id -> (heard at, busy)
        self.handled = 0  # messages acknowledged (tests compare it with messages sent)
        self.ready = threading.Event()  # subscribed to every partition
        self._stopping = threading.Event()
        self._channels: dict[int, Any] = {}  # partition -> the channel consuming it
        self._inbox: list[tuple[int, Message, list[int]]] = []  # held for the next round
        self._live: Connection | None = None
        self.broker_wait = BrokerWaitLog(connection.as_uri(), log)

    def run(self) -> None:
        """Consume until :meth:`stop`, connecting again whenever the connection is lost."""
        lost = self.connection.connection_errors + self.connection.channel_errors
        while not self._stopping.is_set():
            try:
                self._consume()
            except _Stopped:
                break
            except lost as exc:
                log.warning("scorer lost the connection to the broker: %r", exc)
                self._stopping.wait(_RESTART_DELAY_S)

    def stop(self) -> None:
        """Make :meth:`run` return after the message in hand (if any) is done."""
        self._stopping.set()

    # the connection ------------------------------------------------------------------
    def _consume(self) -> None:
        with self.connection.clone() as connection:
            connection.ensure_connection(
                errback=lambda exc, _interval: self.broker_wait.failed(exc),
                callback=self._raise_if_stopping,
            )
            self.broker_wait.connected()
            self._live = connection
            reports = connection.channel()
            inbox = self.topology.scorer_inbox(self.id)
            Consumer(reports, queues=[inbox], on_message=self._on_report, no_ack=True).consume()
            report = Producer(reports, exchange=inbox.exchange)
            self.held.clear()
            self._peers.clear()
            self._streamed.clear()
            self._channels = {
                k: self._subscribe(connection, k) for k in range(self.topology.score_partitions)
            }
            self.ready.set()
            log.info(
                "scorer %s subscribed to %d partitions", self.id, self.topology.score_partitions
            )
            try:
                self._drain(connection, report)
            finally:
                self.ready.clear()
                self._channels = {}
                self._inbox = []  # unacknowledged: the broker delivers them again
                self._live = None

    def _raise_if_stopping(self) -> None:
        if self._stopping.is_set():
            raise _Stopped

    def _subscribe(self, connection: Connection, partition: int) -> Any:
        """A channel of its own per partition, consuming it: letting go of one closes the
        channel, and the broker returns whatever it had delivered on it to the queue, for
        the next owner."""
        channel = connection.channel()
        Consumer(
            channel,
            queues=[self.topology.score_queue(partition)],
            on_message=partial(self._on_message, partition),
            prefetch_count=self.prefetch,  # held for the next round
        ).consume()
        return channel

    def _drain(self, connection: Connection, report: Producer) -> None:
        next_rebalance = time.monotonic() + self.rebalance_s
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                connection.drain_events(timeout=_WAIT_S)
                # and whatever the partitions delivered meanwhile: one round for all
                while len(self._inbox) < len(self._channels) * self.prefetch:
                    connection.drain_events(timeout=_GATHER_S)
            self._round()
            connection.heartbeat_check()  # cheap; sends one when due (under load too)
            if time.monotonic() >= next_rebalance:
                self._rebalance(connection, report)
                next_rebalance = time.monotonic() + self.rebalance_s

    def _rebalance(self, connection: Connection, report: Producer) -> None:
        now = time.monotonic()
        self._streamed.append(self._recent)
        mine = sorted(self.held & set().union(*self._streamed))
        report.publish({"id": self.id, "busy": mine}, serializer="json", delivery_mode=1)
        live = {
            peer: busy
            for peer, (heard, busy) in self._peers.items()
            if now - heard < 3 * self.rebalance_s
        }
        busy = set(mine) | self._handed | set().union(*live.values())
        scorers = 1 + len(live)
        self._recent, self._handed = set(), set()
        count = surplus(mine, len(busy), scorers)
        if not count:
            return
        handed = random.sample(mine, count)
        self._round()  # what is in hand is streamed here, before its partition moves
        for partition in handed:
            self.held.discard(partition)
            self._channels[partition].close()  # the broker makes the next subscriber active
            # a delivery held since (subscribing drains events) goes back with the channel
            self._inbox = [held for held in self._inbox if held[0] != partition]
            self._channels[partition] = self._subscribe(connection, partition)
        self._handed = set(handed)
        log.info(
            "scorer handed on partitions %s (%d scorers, %d busy partitions, %d held)",
            sorted(handed),
            scorers,
            len(busy),
            len(self.held),
        )

    def _on_report(self, message: Message) -> None:
        """Another scorer's report (this scorer's own come back too: skipped)."""
        try:
            data = json.loads(message.body)
            peer, busy = str(data["id"]), {int(k) for k in data["busy"]}
        except (ValueError, KeyError, TypeError):
            log.warning("ignored an unreadable scorer report")
            return
        if peer != self.id:
            self._peers[peer] = (time.monotonic(), busy)

    # messages ------------------------------------------------------------------------
    def _on_message(self, partition: int, message: Message) -> None:
        """Hold a partition's message for the next round (up to ``prefetch`` of each)."""
        if partition not in self.held:  # the broker made this scorer the partition's owner
            self.held.add(partition)
            log.info("scorer streams partition %d (%s)", partition, self.topology.namespace)
        self._recent.add(partition)
        try:
            batch_ids = parse_score_message(message.body)
        except ValueError as exc:  # not ours: nothing to stream, never a loop
            log.error("partition %d: dropped a scoring message: %s", partition, exc)
            message.ack()
            self.handled += 1
            return
        self._inbox.append((partition, message, batch_ids))

    def _round(self) -> None:
        """Stream the batches of every message in hand as one round (each machine in
        stored order up to the newest of its batches they name, so order per machine
        holds however many messages of a partition are in hand), then acknowledge them:
        the per-message costs of the store are paid once for all (a fleet's message names
        few machines per partition)."""
        if not self._inbox:
            return
        held, self._inbox = self._inbox, []
        partitions = sorted({partition for partition, _, _ in held})
        batch_ids = [i for _, _, ids in held for i in ids]
        if not self._work(partitions, batch_ids):
            for _, message, _ in held:
                message.requeue()  # stopping while the store is down: the next owner
            return
        for _, message, _ in held:
            message.ack()
            self.handled += 1

    def _work(self, partitions: Sequence[int], batch_ids: list[int]) -> bool:
        """Stream ``batch_ids``; False if stopped while waiting for the store."""
        delay = 0.5
        while True:
            try:
                self.handle(batch_ids)
                return True
            except ServiceUnavailable as exc:
                log.warning("partitions %s wait %.1f s: %s", partitions, delay, exc)
                if self._wait(delay):
                    return False
                delay = min(_RETRY_MAX_S, delay * 2)
            except Exception:  # like a failed task: the next message streams them again
                log.exception("partitions %s: streaming batches %s failed", partitions, batch_ids)
                return True

    def _wait(self, seconds: float) -> bool:
        """Wait, keeping the connection's heartbeats; True if stopped meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._stopping.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
            if self._live is not None:
                self._live.heartbeat_check()
            if time.monotonic() >= deadline:
                return False
        return True
