"""Scheduled retraining and auto-promotion on a real store and a real MLflow registry:
a due machine gets a challenger trained without flagged readings, the challenger scores
in shadow, and passes the gate into champion; the comparison chart is a pure function."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from mmlw.registry.base import CHALLENGER, CHAMPION
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas.jobs import TrainRequest
from mmlw.services.comparison import CompareRow, comparison_figure
from mmlw.services.jobs import InlineTrainer, submit_training
from mmlw.services.retraining import auto_promote, retrain_due
from mmlw.services.scoring import score_batch
from mmlw.settings import ModelSettings, PromotionSettings
from mmlw.store import Store
from mmlw.store.tables import utcnow
from mmlw.workers.model_cache import ModelCache
from mmlw.workers.simulator import SyntheticMachine
from tests.conftest import TEST_SIGNING_KEY


def add(store: Store, machine: SyntheticMachine, n: int) -> list[int]:
    return [store.readings.add(machine.read(50).to_batch()).batch_id for _ in range(n // 50)]


def test_scheduled_retrain_makes_a_challenger_that_auto_promotion_promotes(
    store: Store, tracking_uri: str, tmp_path: Path
) -> None:
    registry = MlflowRegistry(
        tracking_uri,
        signing_key=TEST_SIGNING_KEY.encode(),
        artifact_root=tmp_path / "artifacts",
        model_prefix=f"r{id(store)}-",
    )
    settings = ModelSettings(
        retrain_every_s=60,
        retrain_last_n=400,
        auto_promote=True,
        promotion=PromotionSettings(gate="shadow", min_readings=100, max_alert_ratio=10),
    )
    trainer = InlineTrainer(store, registry, settings)
    models = ModelCache(registry, ttl_s=0)
    machine = SyntheticMachine("drill-1", seed=8, warmup=300, fault_every=120, fault_length=30)
    first = add(store, machine, 300)
    submit_training(TrainRequest(machine_id="drill-1"), store=store, dispatcher=trainer)
    assert registry.alias_version("drill-1", CHAMPION) == 1
    (v1,) = registry.versions("drill-1")
    assert len(v1.tags["mmlw.config_hash"]) == 16 and v1.tags["dataset_hash"]
    later = add(store, machine, 200)  # with faults now
    for batch_id in first + later:
        score_batch(batch_id, store=store, models=models)

    assert retrain_due(store=store, registry=registry, dispatcher=trainer, settings=settings) == []
    soon = utcnow() + timedelta(minutes=2)
    (job_id,) = retrain_due(
        store=store, registry=registry, dispatcher=trainer, settings=settings, now=soon
    )
    job = store.jobs.get(job_id)
    assert job.request["exclude_flagged"] and job.result is not None
    assert job.result["aliases"] == [CHALLENGER] and job.result["version"] == 2
    window = store.scores.query("drill-1")[-8:]  # the newest 400 readings, 8 batches
    flagged = sum(int(p.flags.sum()) for p in window)
    assert flagged > 0 and job.result["n_readings"] == 400 - flagged

    # the same config on the same data again is recognisable as such
    again = submit_training(
        TrainRequest(machine_id="drill-1", last_n=400, alias="none"),
        store=store,
        dispatcher=trainer,
    )
    twice = submit_training(
        TrainRequest(machine_id="drill-1", last_n=400, alias="none"),
        store=store,
        dispatcher=trainer,
    )
    first_result, second_result = store.jobs.get(again.id).result, store.jobs.get(twice.id).result
    assert first_result is not None and second_result is not None
    assert first_result["same_as"] is None and second_result["same_as"] == first_result["version"]
    assert second_result["config_hash"] == first_result["config_hash"]

    assert auto_promote(store=store, registry=registry, settings=settings) == []  # no shadow yet
    for batch_id in add(store, machine, 200):
        score_batch(batch_id, store=store, models=models)
    assert store.scores.count("drill-1", role="challenger") == 200
    assert auto_promote(store=store, registry=registry, settings=settings) == ["drill-1"]
    assert registry.alias_version("drill-1", CHAMPION) == 2
    assert registry.alias_version("drill-1", CHALLENGER) is None
    moves = [(e.alias, e.to_version, e.actor) for e in store.alias_history.list("drill-1")]
    assert moves[-2:] == [(CHAMPION, 2, "auto-promotion"), (CHALLENGER, None, "auto-promotion")]


def test_comparison_figure_has_one_bar_per_trained_config() -> None:
    def row(detector: str, version: int | None, state: str = "succeeded") -> CompareRow:
        return CompareRow("j", detector, {}, state, version, 0.5, 0.1, 2.0, 0.01, {}, None)

    figure = comparison_figure([row("pca", 1), row("lof", 2), row("bad", None, "failed")])
    assert [list(trace.x) for trace in figure.data] == [["pca v1", "lof v2"]] * 3
    assert [list(trace.y) for trace in figure.data] == [[0.5, 0.5], [0.1, 0.1], [0.01, 0.01]]
    assert "2 of 3 trained" in figure.layout.title.text
