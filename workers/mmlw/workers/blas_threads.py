"""One BLAS thread per worker process.

numpy's BLAS (OpenBLAS here) starts as many threads as there are cores. A prefork worker
already runs one process per core, so each process's BLAS threads only compete with the
other processes, the ingest consumer and the database, and spin while they wait for a
core. On this 2-core machine that doubled the worker's CPU per scored reading once a
predict task stacked about 60k readings into one scoring call (bench/RESULTS.md). So
``mmlw worker`` limits BLAS to ``--blas-threads`` (1) per process, in the parent before
it forks and again in each child.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["limit_blas_threads"]


def limit_blas_threads(threads: int) -> Callable[[], None]:
    """Limit this process's BLAS to ``threads``, and every pool process the worker starts
    after this call; returns what stops the latter."""
    from celery.signals import worker_process_init
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")

    def in_child(**_: Any) -> None:
        threadpool_limits(limits=threads, user_api="blas")

    worker_process_init.connect(in_child, weak=False)
    return lambda: worker_process_init.disconnect(in_child)
