"""``mmlw worker --metrics-port``: one ``/metrics`` for the parent and all pool children.

With the prefork pool every task runs in a child process, and each child's instruments
live in that child. So before the pool starts the parent points every process it will
fork at a temporary directory of its own (emptied first, removed when the parent exits)
where each process records its instruments in its own files; the parent's HTTP server
sums them at every scrape, including those of children that have ended (a child
recycled after ``max_tasks_per_child`` keeps its counts).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmlw.observability.metrics import process_exited, use_multiprocess_dir, worker_registry

__all__ = ["serve_worker_metrics"]


def serve_worker_metrics(port: int, host: str = "0.0.0.0") -> Callable[[], None]:
    """Serve the summed instruments of this process and of every pool process started
    after this call on ``host:port``; returns what stops the bookkeeping of ended
    children (the HTTP server lives as long as the process)."""
    from celery.signals import worker_process_shutdown
    from prometheus_client import start_http_server

    directory = Path(tempfile.mkdtemp(prefix="mmlw-worker-metrics-"))
    use_multiprocess_dir(directory)
    parent = os.getpid()

    def remove_directory() -> None:
        if os.getpid() == parent:  # a forked child exiting leaves it to the parent
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove_directory)
    start_http_server(port, addr=host, registry=worker_registry(directory))

    def child_exited(pid: int | None = None, **_: Any) -> None:
        process_exited(pid or os.getpid(), directory)

    worker_process_shutdown.connect(child_exited, weak=False)

    def disconnect() -> None:
        worker_process_shutdown.disconnect(child_exited)

    return disconnect
