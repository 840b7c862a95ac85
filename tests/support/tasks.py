"""Knowing when the in-process Celery worker has nothing left to do.

A test that asserts something did *not* happen (no second notification, no duplicate)
must first know that the work which could have done it is over; waiting a fixed time
only makes that likely. :class:`TaskTracker` counts, through Celery's signals, every task
this process sends and every run of one that ends in this process's worker: once every
task sent has finished (retries included, they are sent again under the same id), the
cascade they started is done and the store holds all it will hold.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from celery import signals

from tests.support.wait import wait_for

__all__ = ["TaskTracker", "tracking_tasks"]


class TaskTracker:
    """Tasks sent by this process and not finished yet, by id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Counter[str] = Counter()
        self._names: dict[str, str] = {}

    def sent(self, headers: dict[str, Any] | None = None, **_: object) -> None:
        """``before_task_publish``: counted before the worker can possibly run it."""
        if not headers or "id" not in headers:
            return
        with self._lock:
            self._pending[headers["id"]] += 1
            self._names[headers["id"]] = str(headers.get("task", "?"))

    def finished(self, task_id: str | None = None, **_: object) -> None:
        """``task_postrun``: one run ended (succeeded, failed, or asked for a retry).
        Tasks sent before the tracker started are not counted either way."""
        with self._lock:
            if task_id not in self._pending:
                return
            self._pending[task_id] -= 1
            if self._pending[task_id] <= 0:
                del self._pending[task_id]

    def pending(self) -> list[str]:
        """The names of the tasks sent and not finished yet."""
        with self._lock:
            return sorted(self._names[task_id] for task_id in self._pending)

    def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Until every task sent so far, and every task those sent, has finished."""
        wait_for(
            lambda: not self.pending(),
            timeout_s,
            lambda: f"the worker's tasks to finish, still pending: {self.pending()}",
        )


@contextmanager
def tracking_tasks() -> Iterator[TaskTracker]:
    """A :class:`TaskTracker` connected to Celery's signals while the block runs."""
    tracker = TaskTracker()
    uid = f"tests-task-tracker-{id(tracker)}"
    connections: list[tuple[Any, Callable[..., None]]] = [
        (signals.before_task_publish, tracker.sent),
        (signals.task_postrun, tracker.finished),
    ]
    for signal, receiver in connections:
        signal.connect(receiver, weak=False, dispatch_uid=uid)
    try:
        yield tracker
    finally:
        for signal, _ in connections:
            signal.disconnect(dispatch_uid=uid)
