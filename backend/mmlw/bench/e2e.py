"""End to end through the running stack: pika publish -> RabbitMQ -> ingest -> store ->
scorer (the partition's owner) -> scores stored. Every published message is checked to
be stored once and scored once; "done" is read from the store, never from the pipeline's
own counters.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import numpy as np

from mmlw.bench.loadgen import PublishLog, publish_readings
from mmlw.bench.payloads import BodyPool
from mmlw.bench.probe import Counts, StoreProbe
from mmlw.bench.processes import CpuMeter, pids_named
from mmlw.bench.stack import Stack

__all__ = ["LatencyResult", "ThroughputResult", "run_latency", "run_throughput", "warm_up"]

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Delivery:
    """What a drive of the stack published and what the store holds afterwards."""

    log: PublishLog
    counts: Counts
    scored_at: dict[str, datetime]
    missing: int
    cpu_s: dict[str, float]


@dataclass(frozen=True)
class ThroughputResult:
    detector: str
    readings: int
    messages: int
    seconds: float
    publish_seconds: float
    counts: Counts
    missing: int
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds

    @property
    def lossless(self) -> bool:
        c = self.counts
        return (
            self.missing == 0
            and c.readings == c.scored == self.readings
            and c.batches == c.score_batches == self.messages
            and c.dead_letters == 0
        )


@dataclass(frozen=True)
class LatencyResult:
    detector: str
    offered_rate: float
    achieved_rate: float
    readings: int
    messages: int
    batch_size: int
    percentiles_ms: dict[str, float]
    scored_rate: float
    publisher_max_lag_ms: float
    counts: Counts
    missing: int
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def lossless(self) -> bool:
        c = self.counts
        return self.missing == 0 and c.readings == c.scored == self.readings


def _cpu_meter(stack: Stack) -> CpuMeter:
    def roles() -> dict[str, list[int]]:
        return stack.role_pids() | {
            "rabbitmq": pids_named("beam.smp"),
            "postgresql": pids_named("postgres"),
            "bench": [os.getpid()],
        }

    return CpuMeter(roles)


def _touch_api(stack: Stack, machine_id: str) -> None:
    """Read through the API while the pipeline runs (so its memory peak means something)."""
    if stack.api_port is None:
        return
    try:
        httpx.get(f"{stack.api_base}/api/v1/machines", timeout=5)
        httpx.get(
            f"{stack.api_base}/api/v1/machines/{machine_id}/scores",
            params={"limit": 1000},
            timeout=10,
        )
    except httpx.HTTPError:
        pass


def _drive(
    stack: Stack,
    probe: StoreProbe,
    pools: Sequence[BodyPool],
    readings: int,
    *,
    rate: float | None,
    echo: Echo,
    label: str,
    stall_timeout_s: float = 90.0,
) -> Delivery:
    url = stack.sandbox.settings.broker.url
    topology = stack.sandbox.topology
    batch_size = pools[0].batch_size
    messages = -(-readings // batch_size)
    expected = messages * batch_size
    mark = probe.mark()
    log = PublishLog()
    failure: list[BaseException] = []

    def publish() -> None:
        try:
            publish_readings(url, topology, pools, expected, rate=rate, log=log)
        except BaseException as exc:
            failure.append(exc)

    _touch_api(stack, pools[0].machine_id)  # its first requests import and connect: not timed
    meter = _cpu_meter(stack)
    meter.start()
    thread = threading.Thread(target=publish, name="bench-publisher", daemon=True)
    thread.start()
    last_progress = (time.monotonic(), -1)
    next_report = time.monotonic() + 2.0
    reports = 0
    while True:
        time.sleep(0.25)
        if failure:
            raise RuntimeError(f"{label}: publishing failed: {failure[0]}")
        stack.check_alive()
        counts = probe.counts(mark)
        if counts.scored >= expected and not thread.is_alive():
            break
        now = time.monotonic()
        if counts.scored != last_progress[1]:
            last_progress = (now, counts.scored)
        elif now - last_progress[0] > stall_timeout_s:
            raise RuntimeError(
                f"{label}: no progress for {stall_timeout_s:.0f} s: published {log.readings:,}, "
                f"stored {counts.readings:,}, scored {counts.scored:,} of {expected:,}"
            )
        if now >= next_report:
            elapsed = max(time.time() - log.first_s, 1e-9)
            echo(
                f"  {label}: published {log.readings:,}  stored {counts.readings:,}  "
                f"scored {counts.scored:,}/{expected:,}  "
                f"({counts.scored / elapsed:,.0f} readings/s)"
            )
            reports += 1
            if reports % 3 == 0:
                _touch_api(stack, pools[0].machine_id)
            next_report = now + 2.0
    thread.join()
    cpu_s = meter.stop()
    time.sleep(0.5)  # a late duplicate would show up in the counts now
    counts = probe.counts(mark)
    stored = probe.stored_message_ids(mark)
    missing = len(set(log.due) - stored)
    return Delivery(log, counts, probe.scored_at(mark), missing, cpu_s)


def warm_up(
    stack: Stack, probe: StoreProbe, pools: Sequence[BodyPool], messages: int, echo: Echo
) -> None:
    """Score a few messages first: every scorer process loads its models before timing."""
    if messages:
        _drive(
            stack,
            probe,
            pools,
            messages * pools[0].batch_size,
            rate=None,
            echo=echo,
            label="warm-up",
        )


def run_throughput(
    stack: Stack,
    probe: StoreProbe,
    pools: Sequence[BodyPool],
    readings: int,
    *,
    detector: str,
    echo: Echo,
) -> ThroughputResult:
    """Publish flat out; time from the first publish to the last score stored."""
    delivery = _drive(
        stack, probe, pools, readings, rate=None, echo=echo, label=f"{detector} throughput"
    )
    log = delivery.log
    last_scored = max(at.timestamp() for at in delivery.scored_at.values())
    return ThroughputResult(
        detector=detector,
        readings=log.readings,
        messages=log.messages,
        seconds=last_scored - log.first_s,
        publish_seconds=log.last_s - log.first_s,
        counts=delivery.counts,
        missing=delivery.missing,
        cpu_s=delivery.cpu_s,
    )


def _percentiles(values_ms: np.ndarray) -> dict[str, float]:
    out = {f"p{q}": float(np.percentile(values_ms, q)) for q in (50, 95, 99)}
    out["max"] = float(values_ms.max())
    return {k: round(v, 1) for k, v in out.items()}


def run_latency(
    stack: Stack,
    probe: StoreProbe,
    pools: Sequence[BodyPool],
    *,
    rate: float,
    duration_s: float,
    detector: str,
    echo: Echo,
) -> LatencyResult:
    """Publish at ``rate`` readings/s for ``duration_s``; latency = score stored - due time."""
    batch_size = pools[0].batch_size
    readings = max(batch_size, math.ceil(rate * duration_s / batch_size) * batch_size)
    delivery = _drive(
        stack, probe, pools, readings, rate=rate, echo=echo, label=f"{detector} latency"
    )
    log = delivery.log
    latencies = np.array(
        [
            (delivery.scored_at[m].timestamp() - due) * 1000
            for m, due in log.due.items()
            if m in delivery.scored_at
        ]
    )
    span = log.last_s - log.first_s
    last_scored = max(at.timestamp() for at in delivery.scored_at.values())
    return LatencyResult(
        detector=detector,
        offered_rate=rate,
        achieved_rate=log.readings / span if span > 0 else float("nan"),
        readings=log.readings,
        messages=log.messages,
        batch_size=batch_size,
        percentiles_ms=_percentiles(latencies),
        scored_rate=log.readings / (last_scored - log.first_s),
        publisher_max_lag_ms=round(log.max_lag_s * 1000, 1),
        counts=delivery.counts,
        missing=delivery.missing,
        cpu_s=delivery.cpu_s,
    )
