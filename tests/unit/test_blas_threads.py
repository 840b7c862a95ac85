"""`mmlw worker` runs each process with one BLAS thread (mmlw.workers.blas_threads)."""

from __future__ import annotations

import numpy  # noqa: F401 - loads the BLAS library threadpoolctl looks at
from celery.signals import worker_process_init
from threadpoolctl import threadpool_info, threadpool_limits

from mmlw.workers.blas_threads import limit_blas_threads


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_the_limit_holds_here_and_in_every_new_pool_process() -> None:
    before = _blas_threads()
    assert before, "numpy has no BLAS that threadpoolctl can see"
    stop = limit_blas_threads(1)
    try:
        assert _blas_threads() == {1}
        threadpool_limits(limits=2, user_api="blas")  # as a fresh child might start
        worker_process_init.send(sender="celery@test")
        assert _blas_threads() == {1}
    finally:
        stop()
        threadpool_limits(limits=max(before), user_api="blas")
    worker_process_init.send(sender="celery@test")  # disconnected: no longer applies
    assert _blas_threads() == {max(before)}
