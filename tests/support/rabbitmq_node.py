"""A RabbitMQ node of the test run's own, for tests that stop and start the broker.

Stopping the developer's (or CI's shared) broker would break every other test running at
the same time and anything else on the host; a private node on free ports, with its own
data and log folders in a temporary folder, can be stopped freely. It is started with
the installed ``rabbitmq-server`` (the server switches to the ``rabbitmq`` user when run
as root, so its folders are handed to that user) and removed when the test ends.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from mmlw.ports import free_port


@dataclass(frozen=True)
class RabbitNode:
    """A running private node: its AMQP URL and ``rabbitmqctl`` bound to it."""

    name: str
    url: str
    env: dict[str, str]

    def ctl(self, *args: str, timeout_s: float = 120.0) -> None:
        subprocess.run(
            ["rabbitmqctl", "-n", self.name, *args],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=timeout_s,
        )


def available() -> str | None:
    """Why a private node cannot be started here, or None when it can."""
    for tool in ("rabbitmq-server", "rabbitmqctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _hand_to_rabbitmq_user(root: Path) -> None:
    if os.geteuid() != 0:
        return
    try:
        user = pwd.getpwnam("rabbitmq")
    except KeyError:
        return
    for path in [root, *root.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)


def _wait_for_port(port: int, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"the private RabbitMQ node did not listen on {port} in {deadline_s}s")


@contextmanager
def private_rabbitmq(start_timeout_s: float = 90.0) -> Iterator[RabbitNode]:
    """Start a node in a temporary folder; yield it; stop it and remove the folder.

    The folder is made directly in the system temp dir: pytest's own tmp dirs are private
    to the user running the tests, and the server runs as ``rabbitmq``.
    """
    root = Path(tempfile.mkdtemp(prefix="mmlw-rabbitmq-"))
    port, dist_port = free_port(), free_port()
    name = f"mmlwtest{uuid.uuid4().hex[:8]}@localhost"
    (root / "enabled_plugins").write_text("[].\n")
    (root / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{port}\n")
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": name,
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
        "RABBITMQ_LOG_BASE": str(root / "log"),
    }
    _hand_to_rabbitmq_user(root)
    subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, timeout=60)
    node = RabbitNode(name, f"amqp://guest:guest@127.0.0.1:{port}//", env)
    try:
        _wait_for_port(port, start_timeout_s)
        node.ctl("await_startup", "--timeout", str(int(start_timeout_s)))
        yield node
    finally:
        with suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            node.ctl("stop", timeout_s=60)
        shutil.rmtree(root, ignore_errors=True)
