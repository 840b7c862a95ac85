"""The API under hostile and heavy load, as the deployed process (`mmlw api` on
PostgreSQL): 10 clients stream 100 MB bodies without a key while 10 clients read the
whole stored range (about a million readings) with the largest ``limit`` allowed, for
:data:`DURATION_S`. The process stays under :data:`MAX_RSS_BYTES` and ``/health``
answers within :data:`MAX_HEALTH_S` throughout, sampled every :data:`SAMPLE_EVERY_S`.

The RSS is read from ``/proc/<pid>/status`` (Linux; psutil is not a dependency)."""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mmlw.ports import free_port
from mmlw.schemas.readings_arrays import ReadingsArrays
from mmlw.settings import ApiSettings
from mmlw.store import Store
from tests.conftest import _create_pg_database, _drop_pg_database
from tests.integration.test_processes import mmlw, poll, process_env, terminate_all

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.alone]

DURATION_S = 20.0  # the load lasts at least this long, and until MIN_READS reads are done,
MAX_LOAD_S = 180.0  # but no longer than this (a slow machine needs longer, not less)
SAMPLE_EVERY_S = 0.5
MAX_RSS_BYTES = 1024**3
MAX_HEALTH_S = 1.0
CLIENTS = 10  # of each kind
MIN_READS = 2 * CLIENTS  # the load lasts until this many whole-range reads are done
BODY_BYTES = 100 * 10**6
BODY_CHUNK = b"x" * 2**20
READINGS = 1_000_000
READINGS_PER_BATCH = 2_000
SENSORS = 4
API_KEY = "memory-test-key-0123456789"
MACHINE = "big-1"


def _seed(db_url: str) -> float:
    """Store :data:`READINGS` readings of :data:`MACHINE`, one a second; the seconds taken."""
    began = time.monotonic()
    rng = np.random.default_rng(0)
    start_us = 1_767_225_600 * 10**6  # 2026-01-01T00:00:00Z
    store = Store.open(db_url, migrate=False)
    try:
        batches = []
        for first in range(0, READINGS, READINGS_PER_BATCH):
            times = start_us + np.arange(first, first + READINGS_PER_BATCH, dtype=np.int64) * 10**6
            values = rng.normal(size=(READINGS_PER_BATCH, SENSORS))
            batches.append(
                ReadingsArrays(
                    machine_id=MACHINE,
                    message_id=str(uuid.uuid4()),
                    columns=tuple(f"s{i}" for i in range(SENSORS)),
                    timestamps_us=times,
                    values=values,
                )
            )
            if len(batches) == 50:
                store.readings.add_many(batches)
                batches = []
        if batches:
            store.readings.add_many(batches)
    finally:
        store.close()
    return time.monotonic() - began


@pytest.fixture
def api_process(tmp_path: Path, postgres_admin_url: str) -> Iterator[dict[str, Any]]:
    db_name, db_url = _create_pg_database(postgres_admin_url)
    port = free_port()
    env = process_env(
        tmp_path, "memory://", db_url, f"sqlite:///{tmp_path / 'mlflow.db'}", "mem", port,
        MMLW_API__KEYS=f'["{API_KEY}"]',
    )  # fmt: skip
    log = (tmp_path / "api.log").open("w")
    process: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(mmlw("db", "upgrade"), env=env, check=True, capture_output=True, timeout=120)
        seed_s = _seed(db_url)
        process = subprocess.Popen(mmlw("api"), env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        poll("the API", lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200)
        yield {"base": base, "pid": process.pid, "seed_s": seed_s, "log": tmp_path / "api.log"}
    finally:
        if process is not None:
            terminate_all([process])
        log.close()
        _drop_pg_database(postgres_admin_url, db_name)


def rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid`` (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


@dataclass
class Load:
    """What the client threads saw; appended to from many threads (list.append is atomic)."""

    stop: threading.Event = field(default_factory=threading.Event)
    post_outcomes: list[str] = field(default_factory=list)
    read_statuses: list[int] = field(default_factory=list)
    read_bytes: list[int] = field(default_factory=list)
    read_errors: list[str] = field(default_factory=list)


def _body(stop: threading.Event) -> Iterator[bytes]:
    sent = 0
    while sent < BODY_BYTES and not stop.is_set():
        yield BODY_CHUNK
        sent += len(BODY_CHUNK)


def _post_without_key(base: str, load: Load) -> None:
    with httpx.Client(timeout=30) as client:
        while not load.stop.is_set():
            try:
                response = client.post(
                    f"{base}/api/v1/machines/{MACHINE}/readings",
                    content=_body(load.stop),  # a generator: chunked, no Content-Length
                    headers={"Content-Type": "application/json"},
                )
                load.post_outcomes.append(str(response.status_code))
            except httpx.TransportError as exc:  # the server may close mid-upload
                load.post_outcomes.append(type(exc).__name__)


def _read_whole_range(base: str, limit: int, load: Load) -> None:
    url = f"{base}/api/v1/machines/{MACHINE}/readings"
    with httpx.Client(timeout=120, headers={"X-API-Key": API_KEY}) as client:
        while not load.stop.is_set():
            try:
                with client.stream("GET", url, params={"limit": limit}) as response:
                    size = sum(len(chunk) for chunk in response.iter_bytes())
                load.read_statuses.append(response.status_code)
                load.read_bytes.append(size)
            except httpx.TransportError as exc:
                load.read_errors.append(repr(exc))


def test_api_memory_and_health_under_large_bodies_and_reads(api_process: dict[str, Any]) -> None:
    base, pid = api_process["base"], api_process["pid"]
    limit = ApiSettings().max_rows
    load = Load()
    threads = [
        threading.Thread(target=_post_without_key, args=(base, load), daemon=True)
        for _ in range(CLIENTS)
    ] + [
        threading.Thread(target=_read_whole_range, args=(base, limit, load), daemon=True)
        for _ in range(CLIENTS)
    ]
    rss: list[int] = [rss_bytes(pid)]
    health: list[float] = []
    for thread in threads:
        thread.start()
    began_load = time.monotonic()

    def loading() -> bool:
        elapsed = time.monotonic() - began_load
        enough = elapsed >= DURATION_S and len(load.read_statuses) >= MIN_READS
        return not enough and elapsed < MAX_LOAD_S

    with httpx.Client(timeout=10) as probe:
        while loading():
            began = time.monotonic()
            try:
                ok = probe.get(f"{base}/health").status_code == 200
            except httpx.TransportError:
                ok = False
            health.append(time.monotonic() - began if ok else float("inf"))
            rss.append(rss_bytes(pid))
            time.sleep(max(0.0, SAMPLE_EVERY_S - (time.monotonic() - began)))
    load.stop.set()
    for thread in threads:
        thread.join(timeout=150)
    rss.append(rss_bytes(pid))

    summary = (
        f"seeded {READINGS} readings in {api_process['seed_s']:.1f} s; "
        f"loaded for {time.monotonic() - began_load:.0f} s; "
        f"max RSS {max(rss) / 2**20:.0f} MiB; /health median {np.median(health):.3f} s, "
        f"slowest {max(health):.3f} s of {len(health)}; "
        f"reads {load.read_statuses.count(200)} ok of "
        f"{len(load.read_statuses)} ({max(load.read_bytes, default=0) / 1e6:.0f} MB each), "
        f"read errors {load.read_errors[:3]}; posts {sorted(set(load.post_outcomes))} "
        f"x{len(load.post_outcomes)}"
    )
    print(summary)
    assert not any(t.is_alive() for t in threads), "client threads did not stop: " + summary
    assert max(rss) < MAX_RSS_BYTES, summary
    assert max(health) < MAX_HEALTH_S, summary
    # every reader went through the whole range more than once: memory held across reads
    assert len(load.read_statuses) >= MIN_READS and set(load.read_statuses) == {200}, summary
    assert not load.read_errors, summary
    assert min(load.read_bytes) > READINGS * SENSORS * 5, summary  # the whole range came
    assert load.post_outcomes and "202" not in load.post_outcomes, summary
