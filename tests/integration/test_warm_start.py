"""Warm start of a worker process: the models of the most recently seen machines are
loaded before any batch asks for them (a real SQLite store and MLflow registry)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from celery.signals import worker_process_init

from mmlw.registry.base import CHAMPION
from mmlw.schemas.jobs import TrainRequest
from mmlw.services.jobs import InlineTrainer, submit_training
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.context import WorkerContext
from mmlw.workers.simulator import SyntheticMachine
from mmlw.workers.warm_start import PRELOAD_THREAD, connect_warm_start, preload_models


def _deployment(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    """Three machines with readings, the first two with a champion; m-b seen last."""
    settings = make_settings(database_url=f"sqlite:///{tmp_path / 'mmlw.db'}")
    store = Store.open(settings.resolved_database_url, migrate=True)
    context = WorkerContext(settings)
    trainer = InlineTrainer(store, context.registry, settings.models)
    for seed, machine_id in enumerate(("m-a", "m-c", "m-b")):
        machine = SyntheticMachine(machine_id, seed=seed, warmup=400)
        for _ in range(4):
            store.readings.add(machine.read(100).to_batch())
        if machine_id != "m-c":
            submit_training(TrainRequest(machine_id=machine_id), store=store, dispatcher=trainer)
    return settings


def test_preload_loads_the_champions_of_recent_machines_once(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = _deployment(make_settings, tmp_path)

    everything = WorkerContext(settings)
    assert preload_models(everything, 8) == 2  # m-c has no model: skipped, no error
    champion = everything.models.get("m-a", CHAMPION)
    assert champion is not None and champion.version == 1
    assert everything.models.loads == 2  # the batch found it loaded

    newest = WorkerContext(settings)
    assert preload_models(newest, 1) == 1
    newest.models.get("m-b", CHAMPION)
    assert newest.models.loads == 1  # m-b was seen last: it is the one preloaded
    newest.models.get("m-a", CHAMPION)
    assert newest.models.loads == 2

    assert preload_models(WorkerContext(settings), 0) == 0


def test_a_new_worker_process_preloads_in_the_background(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = _deployment(make_settings, tmp_path)
    context = WorkerContext(settings)
    disconnect = connect_warm_start(context)
    try:
        worker_process_init.send(sender="celery@test")  # what a prefork child sends
    finally:
        disconnect()
    deadline = time.monotonic() + 60
    while any(t.name == PRELOAD_THREAD for t in threading.enumerate()):
        assert time.monotonic() < deadline, "preloading did not finish"
        time.sleep(0.05)
    assert context.models.loads == 2
    assert context.models.get("m-b", CHAMPION) is not None
    assert context.models.loads == 2
