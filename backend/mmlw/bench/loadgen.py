"""The machines: publish pre-encoded readings batches with the project's pika publisher
(persistent messages, a publisher confirm per message, one connection per machine), flat
out or at a fixed rate.

At a fixed rate the schedule is open-loop: message ``i`` is due at ``start + i * size /
rate`` whatever happened before, and its latency is measured from that due time, so a
publisher that falls behind shows up as latency instead of hiding it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mmlw.bench.payloads import BodyPool
from mmlw.messaging.pika_publisher import PikaReadingsPublisher
from mmlw.messaging.topology import Topology

__all__ = ["MAX_PUBLISHERS", "PublishLog", "publish_readings"]

#: the most publisher connections (and threads) the load generator opens
MAX_PUBLISHERS = 64


@dataclass
class PublishLog:
    """When each message was due and when its publish returned (epoch seconds)."""

    due: dict[str, float] = field(default_factory=dict)
    confirmed: dict[str, float] = field(default_factory=dict)
    readings: int = 0
    messages: int = 0
    first_s: float = 0.0
    last_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def max_lag_s(self) -> float:
        """How far the publisher fell behind its schedule at worst."""
        return max((self.confirmed[m] - self.due[m] for m in self.due), default=0.0)


def publish_readings(
    url: str,
    topology: Topology,
    pools: Sequence[BodyPool],
    total_readings: int,
    *,
    rate: float | None = None,
    log: PublishLog | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> PublishLog:
    """Publish ``total_readings`` round-robin over ``pools`` (one pool per machine).

    Message ``i`` is machine ``i % len(pools)``'s. Machines publish on connections of
    their own, each in a thread: one per machine up to :data:`MAX_PUBLISHERS`, beyond that
    each connection publishes for several machines (a fleet of 1,000 opening 1,000
    connections at once timed out in RabbitMQ's handshake on two cores). With one
    connection for all, every message would wait for the previous one's confirm and the
    fleet could send no faster than one publisher's round trips (about 400 messages/s
    here): the bench would measure its load generator instead of the pipeline.

    ``rate`` is readings/s for the whole fleet; None publishes as fast as confirms allow.
    ``log`` may be shared with a progress reporter (its counters grow as it runs).
    """
    log = log or PublishLog()
    batch_size = pools[0].batch_size
    messages = -(-total_readings // batch_size)
    for pool in pools:
        pool.prepare(-(-messages // len(pools)))
    failures: list[BaseException] = []

    def start_clock() -> None:  # once every machine is connected
        log.first_s = time.time()

    connections = min(len(pools), MAX_PUBLISHERS)
    ready = threading.Barrier(connections, action=start_clock)

    def publisher_thread(k: int) -> None:
        try:
            with PikaReadingsPublisher(url, topology) as publisher:
                publisher.connect()  # connect and declare before the clock starts
                ready.wait()
                # this connection's machines' messages, in the order they are due
                mine = [i for i in range(messages) if (i % len(pools)) % connections == k]
                _publish_share(publisher, mine, log.first_s)
        except threading.BrokenBarrierError:
            pass
        except BaseException as exc:
            failures.append(exc)
            ready.abort()

    def _publish_share(publisher: PikaReadingsPublisher, indexes: list[int], start: float) -> None:
        for i in indexes:
            pool = pools[i % len(pools)]
            if should_stop() or failures:
                return
            due = start + i * batch_size / rate if rate else time.time()
            if rate:
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
            message_id, body = pool.next_body(datetime.fromtimestamp(due, UTC))
            publisher.publish_raw(pool.machine_id, body, message_id=message_id)
            confirmed = time.time()
            with log.lock:
                log.due[message_id] = due
                log.confirmed[message_id] = confirmed
                log.readings += batch_size
                log.messages += 1
                log.last_s = max(log.last_s, confirmed)

    threads = [
        threading.Thread(
            target=publisher_thread, args=(k,), name=f"bench-publisher-{k}", daemon=True
        )
        for k in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return log
