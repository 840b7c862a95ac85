"""The pipeline under test, started as separate processes the way compose runs it.

``mmlw ingest`` (one or more), ``mmlw scorer`` (``scorers`` processes), ``mmlw worker`` (a
pool of ``concurrency`` processes or threads, for training and backfills) and ``mmlw api``
run as children of the bench, with the sandbox's settings in their
environment. Ready means every consumer is attached to its queue; stopping reads each
process tree's peak RSS first.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pika
import pika.exceptions

from mmlw.bench.processes import descendants, peak_rss_mb
from mmlw.bench.sandbox import Sandbox, settings_env
from mmlw.bench.scenarios import StackSpec
from mmlw.messaging.pika_publisher import pika_url
from mmlw.ports import free_port

__all__ = ["Stack", "StackOptions", "queue_consumers"]


@dataclass(frozen=True)
class StackOptions:
    concurrency: int = 2
    scorers: int = 2
    pool: str = "prefork"
    ingest_processes: int = 1
    ingest_prefetch: int = 256
    api: bool = True

    @classmethod
    def of(cls, spec: StackSpec, **overrides: Any) -> StackOptions:
        """The options of a scenario's stack section, with ``overrides``."""
        fields = {
            "concurrency": spec.concurrency,
            "scorers": spec.scorers,
            "pool": spec.pool,
            "ingest_processes": spec.ingest_processes,
            "ingest_prefetch": spec.ingest_prefetch,
        }
        return cls(**(fields | overrides))


@dataclass
class _Child:
    role: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    peak_mb: float | None = None
    tree_peak_mb: float | None = None


def queue_consumers(amqp_url: str, queue: str) -> int:
    """Consumers attached to ``queue`` (0 if it does not exist yet: the broker closes the
    channel, which pika logs as a warning; polled while the stack starts, that was a
    screenful of warnings before every run)."""
    connection = pika.BlockingConnection(pika.URLParameters(pika_url(amqp_url)))
    channel_log = logging.getLogger("pika.channel")
    level = channel_log.level
    try:
        channel = connection.channel()
        channel_log.setLevel(logging.ERROR)
        try:
            return int(channel.queue_declare(queue, passive=True).method.consumer_count)
        except pika.exceptions.ChannelClosedByBroker:
            return 0
        finally:
            channel_log.setLevel(level)
    finally:
        if connection.is_open:
            connection.close()


@dataclass
class Stack:
    sandbox: Sandbox
    options: StackOptions
    children: list[_Child] = field(default_factory=list)
    api_port: int | None = None

    def _spawn(self, role: str, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MMLW_")}
        env |= settings_env(self.sandbox.settings)
        if self.api_port is not None:
            env["MMLW_API__PORT"] = str(self.api_port)
        log_path: Path = self.sandbox.directory / f"{role}-{len(self.children)}.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "mmlw.cli", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.children.append(_Child(role, process, log))

    def start(self, timeout_s: float = 120.0) -> None:
        options = self.options
        if options.api:
            self.api_port = free_port()
        for _ in range(options.ingest_processes):
            self._spawn("ingest", "ingest", "--prefetch", str(options.ingest_prefetch))
        # One `mmlw worker` per host: two would claim the same Celery node name.
        self._spawn(
            "worker",
            "worker",
            "--queues",
            "predict,train",
            "--concurrency",
            str(options.concurrency),
            "--pool",
            options.pool,
        )
        for _ in range(options.scorers):
            self._spawn("scorer", "scorer")
        if options.api:
            self._spawn("api", "api")
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        topology = self.sandbox.topology
        url = self.sandbox.settings.broker.url
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            ingest = queue_consumers(url, topology.ingest_queue_name)
            predict = queue_consumers(url, topology.task_queue_name("predict"))
            scorers = sum(
                "subscribed to" in Path(c.log.name).read_text(errors="replace")
                for c in self.children
                if c.role == "scorer"
            )
            api_up = self.api_port is None or self._api_healthy()
            ready = ingest >= self.options.ingest_processes and predict >= 1
            if ready and scorers >= self.options.scorers and api_up:
                return
            time.sleep(0.25)
        raise RuntimeError(f"the stack did not become ready in {timeout_s:.0f} s; see logs")

    def _api_healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_base}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def check_alive(self) -> None:
        for child in self.children:
            if child.process.poll() is not None:
                raise RuntimeError(
                    f"{child.role} exited with {child.process.returncode}; its log ended: "
                    f"{_last_lines(child.log.name)}"
                )

    def role_pids(self) -> dict[str, list[int]]:
        """Every live process of each role, prefork children included."""
        out: dict[str, list[int]] = {}
        for child in self.children:
            pid = child.process.pid
            out.setdefault(child.role, []).extend([pid, *descendants(pid)])
        return out

    def record_peaks(self) -> None:
        """Read every process tree's peak RSS (call before stopping)."""
        for child in self.children:
            pid = child.process.pid
            own = peak_rss_mb(pid)
            tree = [own] + [peak_rss_mb(p) for p in descendants(pid)]
            known = [m for m in tree if m is not None]
            child.peak_mb = max(known) if known else None
            child.tree_peak_mb = sum(known) if known else None

    def peaks(self) -> dict[str, dict[str, float]]:
        """Per role: the largest single process and the largest process tree, in MB."""
        out: dict[str, dict[str, float]] = {}
        for child in self.children:
            if child.peak_mb is None or child.tree_peak_mb is None:
                continue
            entry = out.setdefault(child.role, {"process_mb": 0.0, "tree_mb": 0.0})
            entry["process_mb"] = max(entry["process_mb"], child.peak_mb)
            entry["tree_mb"] = max(entry["tree_mb"], child.tree_peak_mb)
        return out

    def stop(self) -> None:
        self.record_peaks()
        for child in self.children:
            if child.process.poll() is None:
                child.process.terminate()
        for child in self.children:
            try:
                child.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(timeout=10)
            child.log.close()

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _last_lines(path: str, n: int = 3) -> str:
    """The last ``n`` lines of a child's log, joined (the log goes with the sandbox)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            lines = [line.strip() for line in log if line.strip()]
    except OSError as exc:
        return f"(unreadable: {exc})"
    return " | ".join(lines[-n:]) or "(empty)"
