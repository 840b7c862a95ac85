"""What MMLW exposes to Prometheus.

Two sources, because work runs in many processes:

* **totals from the store and the broker**, read at scrape time by :class:`StoreCollector`
  (readings and scores stored, batches dead-lettered, alerts by state, notifications by
  status, queue depths): correct whichever process did the work. The API serves them at
  ``/metrics``;
* **instruments** (:func:`instruments`): predict latency, model load time, alerts fired
  and notifications failed. The API serves its own process's at ``/metrics`` (in
  ``mmlw demo`` that process is also the worker). ``mmlw worker --metrics-port`` serves
  the sum over the worker's parent and all its pool children, past and present:
  :func:`use_multiprocess_dir` before the children start, :func:`worker_registry` to
  serve, :func:`process_exited` when a child ends. Each worker host serves its own;
  Prometheus sums over hosts (``sum by (__name__)``).

Every ``_total`` counter only ever rises (until its process restarts, for instruments).

====================================================  =========  =============================
metric (as exposed)                                   type       what it counts
====================================================  =========  =============================
``mmlw_readings_stored_total``                        counter    readings stored, all machines
``mmlw_scores_stored_total``                          counter    champion scores stored
``mmlw_batches_dead_lettered_total``                  counter    messages ever dead-lettered
                                                                 (a purge does not lower it)
``mmlw_alerts{state}``                                gauge      alert instances by state
``mmlw_notifications{status}``                        gauge      notifications by status
``mmlw_queue_depth{queue}``                           gauge      messages waiting in a queue
``mmlw_predict_seconds``                              histogram  time to score and store one
                                                                 predict task's batches
``mmlw_model_load_seconds``                           histogram  time to load a model version
``mmlw_alerts_fired_total{event}``                    counter    alert events notified
``mmlw_notification_attempts_failed_total{channel}``  counter    failed notification attempts
``mmlw_models_refused_total``                         counter    model versions refused (not
                                                                 signed by MMLW)
====================================================  =========  =============================
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = [
    "Instruments",
    "StoreCollector",
    "instruments",
    "process_exited",
    "use_multiprocess_dir",
    "worker_registry",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Instruments:
    registry: CollectorRegistry
    predict_seconds: Histogram
    model_load_seconds: Histogram
    alerts_fired: Counter
    notifications_failed: Counter
    models_refused: Counter


_lock = threading.Lock()
_instruments: Instruments | None = None


def instruments() -> Instruments:
    """This process's instruments, created on first use."""
    global _instruments
    with _lock:
        if _instruments is None:
            registry = CollectorRegistry()
            _instruments = Instruments(
                registry=registry,
                predict_seconds=Histogram(
                    "mmlw_predict_seconds",
                    "time to score and store one readings batch (this process)",
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
                    registry=registry,
                ),
                model_load_seconds=Histogram(
                    "mmlw_model_load_seconds",
                    "time to load a model version from the registry (this process)",
                    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                    registry=registry,
                ),
                alerts_fired=Counter(
                    "mmlw_alerts_fired",
                    "alert events notified by this process",
                    ["event"],
                    registry=registry,
                ),
                notifications_failed=Counter(
                    "mmlw_notification_attempts_failed",
                    "failed notification attempts made by this process",
                    ["channel"],
                    registry=registry,
                ),
                models_refused=Counter(
                    "mmlw_models_refused",
                    "model versions this process refused to load (not signed by MMLW)",
                    registry=registry,
                ),
            )
        return _instruments


def use_multiprocess_dir(path: Path) -> None:
    """Make this process and every process it starts from now on record their instruments
    in files under ``path`` (emptied first), so :func:`worker_registry` can sum them.

    Call it in the worker's parent before its pool starts; instruments created before
    are dropped (they would count in this process only).
    """
    global _instruments
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    # the environment is how prometheus_client (and forked or spawned children) find it
    os.environ[MULTIPROC_ENV] = str(path)
    with _lock:
        values.ValueClass = values.MultiProcessValue()
        _instruments = None


def worker_registry(path: Path) -> CollectorRegistry:
    """A registry that reads, at each scrape, the instruments every process recorded
    under ``path`` (see :func:`use_multiprocess_dir`), summed."""
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    return registry


def process_exited(pid: int, path: Path) -> None:
    """Bookkeeping when a process that recorded under ``path`` ends: its live gauges go,
    its counters and histograms stay in the sums."""
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid, str(path))


class StoreCollector:
    """Totals read from the store (and queue depths from the broker) at scrape time."""

    def __init__(self, store: Any, broker_url: str, queues: list[str]) -> None:
        self._store = store
        self._broker_url = broker_url
        self._queues = queues

    def collect(self) -> Iterator[Any]:
        totals = self._store.observability_totals()
        readings = CounterMetricFamily("mmlw_readings_stored", "readings stored, all machines")
        readings.add_metric([], totals["readings"])
        yield readings
        scores = CounterMetricFamily("mmlw_scores_stored", "champion scores stored")
        scores.add_metric([], totals["scores"])
        yield scores
        dead = CounterMetricFamily("mmlw_batches_dead_lettered", "messages dead-lettered")
        dead.add_metric([], totals["dead_letters"])
        yield dead
        alerts = GaugeMetricFamily("mmlw_alerts", "alert instances by state", labels=["state"])
        for state, count in sorted(totals["alerts"].items()):
            alerts.add_metric([state], count)
        yield alerts
        deliveries = GaugeMetricFamily(
            "mmlw_notifications", "notifications by delivery status", labels=["status"]
        )
        for status, count in sorted(totals["deliveries"].items()):
            deliveries.add_metric([status], count)
        yield deliveries
        depth = GaugeMetricFamily("mmlw_queue_depth", "messages waiting", labels=["queue"])
        for queue, count in self._queue_depths().items():
            depth.add_metric([queue], count)
        yield depth

    def _queue_depths(self) -> dict[str, int]:
        if not self._broker_url.startswith(("amqp", "pyamqp")):
            return {}
        from kombu import Connection

        depths: dict[str, int] = {}
        try:
            with Connection(self._broker_url, connect_timeout=2) as connection:
                channel = connection.channel()
                for queue in self._queues:
                    declared = channel.queue_declare(queue, passive=True)
                    depths[queue] = int(declared.message_count)
        except Exception as exc:  # a scrape must not fail because the broker is away
            log.warning("queue depth unavailable: %s", exc)
        return depths
