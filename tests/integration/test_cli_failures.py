"""Commands that fail well: the real ``mmlw`` in a subprocess against a broker that is
down (a closed port on loopback), a broker that refuses the login (the real RabbitMQ with
a wrong password) and a broker URL with a typo. Each failure is one line that says what is
wrong and what to do, exit code 1, no traceback unless ``-v``, never a password; a
long-running consumer says that it waits for the broker, and when it is back.
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import pytest

from mmlw.messaging.topology import Topology
from mmlw.schemas.jobs import JobState
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine
from tests.integration.pipeline import delete_topology
from tests.integration.tcp_proxy import TcpProxy

PASSWORD = "pw-s3cret-x"  # must never appear in any output


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mmlw_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMLW_")}
    env.update(
        MMLW_ENVIRONMENT="test",
        MMLW_DATA_DIR=str(data_dir),
        MMLW_BROKER__NAMESPACE=f"t{uuid.uuid4().hex[:10]}",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def mmlw(*args: str, env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run ``python -m mmlw.cli ARGS``: exit code and stdout + stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "mmlw.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout + done.stderr


def assert_one_clear_line(code: int, output: str, *expected: str) -> str:
    assert code != 0, output
    assert "Traceback" not in output, output
    assert PASSWORD not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    (line,) = lines
    assert line.startswith("Error: "), line
    for text in expected:
        assert text in line, line
    return line


def with_password(url: str, password: str, port: int | None = None) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username or 'guest'}:{password}@{parts.hostname}:{port or parts.port or 5672}"
    return urlunsplit(parts._replace(netloc=netloc))


# --- train: the job fails with the reason when it cannot be queued ---------------------


def test_train_with_the_broker_down_is_one_line_and_fails_the_job(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = Store.open(f"sqlite:///{data_dir / 'mmlw.db'}")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    store.readings.add(SyntheticMachine("press-1", seed=1, start=start).read(60).to_batch())
    port = closed_port()
    env = mmlw_env(data_dir, MMLW_BROKER__URL=f"amqp://guest:{PASSWORD}@127.0.0.1:{port}//")
    try:
        code, output = mmlw("train", "press-1", env=env)
        location = f"amqp://127.0.0.1:{port}//"
        line = assert_one_clear_line(
            code, output, "not queued", f"cannot reach the broker at {location}"
        )
        assert "connection refused" in line and "MMLW_BROKER__URL" in line
        (job,) = store.jobs.list("press-1")
        assert job.state is JobState.FAILED  # not queued forever
        assert job.error is not None and job.error.startswith("not queued: cannot reach")

        code, verbose = mmlw("-v", "train", "press-1", env=env)
        assert code != 0 and "Traceback" in verbose and PASSWORD not in verbose
        assert verbose.rstrip().splitlines()[-1].startswith("Error: ")
    finally:
        store.close()


# --- a broker that refuses the login --------------------------------------------------


def test_simulate_with_a_wrong_password_is_one_line(tmp_path: Path, rabbitmq_url: str) -> None:
    env = mmlw_env(tmp_path / "data", MMLW_BROKER__URL=with_password(rabbitmq_url, PASSWORD))
    code, output = mmlw("simulate", "--duration", "3", env=env)
    line = assert_one_clear_line(code, output, "refused the login", "MMLW_BROKER__URL")
    assert "published" not in output, line

    code, verbose = mmlw("-v", "simulate", "--duration", "3", env=env)
    assert code != 0 and "Traceback" in verbose and "AccessRefused" in verbose


def test_simulate_with_the_broker_down_is_one_line(tmp_path: Path) -> None:
    port = closed_port()
    env = mmlw_env(
        tmp_path / "data", MMLW_BROKER__URL=f"amqp://guest:{PASSWORD}@127.0.0.1:{port}//"
    )
    code, output = mmlw("simulate", "--duration", "3", env=env)
    assert_one_clear_line(code, output, "cannot reach the broker", "connection refused")


# --- a typo in the broker URL ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [("htp://x", "unknown scheme 'htp'"), (f"guest:{PASSWORD}@rabbit:5672", "no scheme")],
)
def test_a_broker_url_with_an_unknown_scheme_is_refused_at_start(
    tmp_path: Path, url: str, expected: str
) -> None:
    code, output = mmlw("machines", env=mmlw_env(tmp_path / "data", MMLW_BROKER__URL=url))
    line = assert_one_clear_line(code, output, "settings", "MMLW_BROKER__URL", expected)
    assert "amqp://" in line and "memory://" in line


# --- broker down: the clear line first ------------------------------------------------


def test_demo_with_the_broker_down_says_so_in_one_line_first(tmp_path: Path) -> None:
    port = closed_port()
    env = mmlw_env(
        tmp_path / "data", MMLW_BROKER__URL=f"amqp://guest:{PASSWORD}@127.0.0.1:{port}//"
    )
    code, output = mmlw("demo", "--duration", "5", "--port", str(closed_port()), env=env)
    assert_one_clear_line(code, output, f"cannot reach the broker at amqp://127.0.0.1:{port}//")


class Lines:
    """The lines a process writes, read in a thread, waited for by content."""

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} in {timeout_s} s: {self.seen}")

    def rest(self, settle_s: float = 0.5) -> str:
        time.sleep(settle_s)
        while not self._queue.empty():
            self.seen.append(self._queue.get())
        return "\n".join(self.seen)


@contextmanager
def running(*args: str, env: dict[str, str]) -> Iterator[Lines]:
    process = subprocess.Popen(
        [sys.executable, "-m", "mmlw.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    try:
        yield Lines(process.stdout)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_ingest_waits_for_the_broker_and_says_when_it_is_back(
    tmp_path: Path, rabbitmq_url: str
) -> None:
    parts = urlsplit(rabbitmq_url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    proxy.port = closed_port()  # the broker is "down" until the proxy listens there
    credentials = parts.netloc.rpartition("@")[0]
    url = urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{proxy.port}"))
    env = mmlw_env(tmp_path / "data", MMLW_BROKER__URL=url)
    Store.open(f"sqlite:///{tmp_path / 'data' / 'mmlw.db'}").close()  # `mmlw db upgrade` ran
    location = f"amqp://127.0.0.1:{proxy.port}//"
    try:
        with running("ingest", env=env) as lines:
            waiting = lines.wait_for("waiting for the broker", timeout_s=60)
            assert f"at {location} (connection refused); retrying" in waiting
            proxy.restore()
            assert location in lines.wait_for("connected to the broker", timeout_s=60)
            proxy.cut()  # lost while consuming: waiting again, then back again
            lines.wait_for("waiting for the broker", timeout_s=60)
            proxy.restore()
            lines.wait_for("connected to the broker", timeout_s=60)
            output = lines.rest()
        assert "Traceback" not in output and f":{parts.password}@" not in output, output
    finally:
        proxy.cut()
        delete_topology(rabbitmq_url, Topology(env["MMLW_BROKER__NAMESPACE"]))


def test_worker_with_the_broker_down_says_it_waits_first_and_nothing_more(
    tmp_path: Path,
) -> None:
    port = closed_port()
    env = mmlw_env(
        tmp_path / "data", MMLW_BROKER__URL=f"amqp://guest:{PASSWORD}@127.0.0.1:{port}//"
    )
    Store.open(f"sqlite:///{tmp_path / 'data' / 'mmlw.db'}").close()  # `mmlw db upgrade` ran
    with running("worker", env=env) as lines:
        first = lines.wait_for("waiting for the broker", timeout_s=60)
        output = lines.rest(settle_s=5)
    assert lines.seen[0] == first, output
    assert f"at amqp://127.0.0.1:{port}// (connection refused)" in first
    assert "Traceback" not in output and "ERROR" not in output and PASSWORD not in output
