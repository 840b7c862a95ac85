"""Warm start of ``mmlw worker``: no batch waits for an import or a model load.

With the prefork pool a batch would otherwise pay, in whichever child it lands on first,
for ``import mlflow`` (over a second), the MLflow client and store (most of a second) and
the load of its machine's models (15-70 ms each), once per child and machine: a stall of
seconds after every start or restart of a worker. So the parent imports the library
before it forks (``worker_init``), and each child, as it starts
(``worker_process_init``), loads the champion and challenger of the most recently seen
machines (``MMLW_MODELS__PRELOAD_MACHINES``) in a background thread: Celery gives a
child's initialisation only a few seconds, and a task that arrives meanwhile simply
waits on the model cache's lock for its machine.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from mmlw.registry.base import CHALLENGER, CHAMPION
from mmlw.workers.context import WorkerContext

__all__ = ["PRELOAD_THREAD", "connect_warm_start", "preload_models"]

PRELOAD_THREAD = "mmlw-preload"

log = logging.getLogger(__name__)


def preload_models(context: WorkerContext, machines: int) -> int:
    """Load the champion and challenger of the ``machines`` most recently seen machines
    into the context's model cache; the number of models it holds afterwards. A machine
    whose models cannot be resolved or loaded is logged and skipped (its first batch
    tries again, and dead-letters or retries as usual)."""
    if machines <= 0:
        return 0
    cache = context.models
    for machine_id in context.store.machines.recent(machines):
        for alias in (CHAMPION, CHALLENGER):
            try:
                cache.get(machine_id, alias)
            except Exception:
                log.warning("preloading the %s of %s failed", alias, machine_id, exc_info=True)
    return cache.loads


def connect_warm_start(context: WorkerContext) -> Callable[[], None]:
    """Connect the two signal handlers for the worker whose tasks use ``context``
    (``mmlw worker`` calls this; in-process test workers do not fork and do not);
    returns what disconnects them."""
    from celery.signals import worker_init, worker_process_init

    from mmlw.registry.mlflow_registry import import_library

    def on_worker_init(**_: Any) -> None:
        import_library()

    def on_process_init(**_: Any) -> None:
        context.models  # noqa: B018 - built here, not raced by the first task
        context.store  # noqa: B018
        threading.Thread(target=_preload, name=PRELOAD_THREAD, daemon=True).start()

    def _preload() -> None:
        try:
            loaded = preload_models(context, context.settings.models.preload_machines)
        except Exception:
            log.warning("preloading models failed", exc_info=True)
        else:
            log.info("preloaded %d model(s)", loaded)

    worker_init.connect(on_worker_init, weak=False)
    worker_process_init.connect(on_process_init, weak=False)

    def disconnect() -> None:
        worker_init.disconnect(on_worker_init)
        worker_process_init.disconnect(on_process_init)

    return disconnect
