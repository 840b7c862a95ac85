"""Drift is not a fault: a change that ends within ``min_regime_s`` is an episode and
retrains nothing; one that persists is retrained on, as a challenger that becomes
champion only through the promotion gate (on a real store and a real MLflow registry);
an alert open during a fault stays open until the readings are normal, whatever is
trained meanwhile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from mmlw.alerts.config import load_alerts_config
from mmlw.detectors.catalog import build_detector
from mmlw.detectors.model import AnomalyModel
from mmlw.registry.base import CHALLENGER, CHAMPION
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas import ReadingsBatch
from mmlw.schemas.jobs import JobState, TrainRequest
from mmlw.services.alerting import evaluate_machine
from mmlw.services.drift import DRIFT_REASON, observe
from mmlw.services.jobs import InlineTrainer, submit_training
from mmlw.services.retraining import auto_promote
from mmlw.services.scoring import LoadedModel, score_batch
from mmlw.settings import DriftSettings, ModelSettings, PromotionSettings
from mmlw.store import ScoreRecord, Store
from mmlw.workers.model_cache import ModelCache
from mmlw.workers.simulator import SyntheticMachine
from tests.conftest import TEST_SIGNING_KEY
from tests.integration.dispatchers import Jobs

T0 = datetime(2026, 5, 1, tzinfo=UTC)
SETTINGS = DriftSettings(
    delta=0.5, threshold=30.0, min_readings=50, train_readings=50, min_regime_s=600
)


def feed(store: Store, jobs: Jobs, ratios: list[float], start_s: int = 0) -> None:
    """One reading a second, scored ``ratio`` x threshold, in batches of 10, observed."""
    rng = np.random.default_rng(start_s)
    detector = build_detector("pca").fit(rng.normal(size=(200, 2)))
    champion = LoadedModel("m-model", 1, AnomalyModel(detector, 1.0, ["a", "b"], "pca"))
    for k in range(0, len(ratios), 10):
        times = [T0 + timedelta(seconds=start_s + k + i) for i in range(10)]
        batch = ReadingsBatch.of_rows("m", ["a", "b"], times, rng.normal(size=(10, 2)).tolist())
        saved = store.readings.get(store.readings.add(batch).batch_id)
        scores = np.asarray(ratios[k : k + 10]) * np.exp(rng.normal(0, 0.05, 10))
        store.scores.add(
            ScoreRecord(saved, "m-model", 1, "champion", 1.0, scores, np.c_[scores, 0 * scores],
                        ["a", "b"])
        )  # fmt: skip
        observe("m", champion, saved.timestamps_us, scores, store=store, dispatcher=jobs,
                settings=SETTINGS)  # fmt: skip


def test_a_two_minute_fault_is_an_episode_and_retrains_nothing(store: Store) -> None:
    jobs = Jobs()
    feed(store, jobs, [0.3] * 400 + [5.0] * 120 + [0.3] * 600)
    assert store.jobs.list("m") == [] and jobs.trained == []
    state = store.drift.get("m")
    assert state is not None and state.status == "watching" and state.change_at is None


def test_a_persistent_regime_is_retrained_on_as_a_challenger_once(store: Store) -> None:
    jobs = Jobs()
    feed(store, jobs, [0.3] * 400 + [5.0] * 500)
    assert store.jobs.list("m") == []  # 500 s after the change: still possibly a fault
    feed(store, jobs, [5.0] * 300, start_s=900)
    (job,) = store.jobs.list("m")
    assert jobs.trained == [str(job.id)]
    assert job.request["alias"] == CHALLENGER
    assert str(job.request["reason"]).startswith(DRIFT_REASON)
    started = datetime.fromisoformat(str(job.request["start"]))
    assert T0 + timedelta(seconds=395) <= started <= T0 + timedelta(seconds=460)


def add(store: Store, machine: SyntheticMachine, n: int, shift: float = 0.0) -> list[int]:
    ids = []
    for _ in range(n // 50):
        frame = machine.read(50)
        times = list(frame.timestamps)
        values = (frame.values + shift).tolist()
        batch = ReadingsBatch.of_rows(machine.machine_id, list(frame.columns), times, values)
        ids.append(store.readings.add(batch).batch_id)
    return ids


def test_a_drift_challenger_becomes_champion_only_through_the_gate(
    store: Store, tracking_uri: str, tmp_path: Path
) -> None:
    registry = MlflowRegistry(
        tracking_uri,
        signing_key=TEST_SIGNING_KEY.encode(),
        artifact_root=tmp_path / "artifacts",
        model_prefix=f"d{id(store)}-",
    )
    settings = ModelSettings(  # auto_promote is off: only drift challengers are promoted
        promotion=PromotionSettings(gate="shadow", min_readings=100, max_alert_ratio=1.5)
    )
    assert not settings.auto_promote and settings.drift.promote
    trainer = InlineTrainer(store, registry, settings)
    models = ModelCache(registry, ttl_s=0)
    machines = {
        "regime": SyntheticMachine("regime", seed=3, faults=()),
        "fault": SyntheticMachine("fault", seed=4, faults=()),
    }
    for machine in machines.values():
        add(store, machine, 400)
        submit_training(
            TrainRequest(machine_id=machine.machine_id, detector="pca"),
            store=store, dispatcher=trainer,
        )  # fmt: skip
    spread = float(store.readings.window("regime")[0].std().mean())
    shifted = {name: add(store, m, 400, shift=8 * spread) for name, m in machines.items()}
    for ids in shifted.values():
        for batch_id in ids:
            score_batch(batch_id, store=store, models=models)

    def drift_retrain(name: str) -> None:
        start = store.readings.get(shifted[name][0]).timestamps_us[0]
        job = submit_training(
            TrainRequest(
                machine_id=name, detector="pca", alias=CHALLENGER,
                start=datetime.fromtimestamp(start / 1e6, UTC),
                reason=f"{DRIFT_REASON} regime changed (test)",
            ),
            store=store, dispatcher=trainer,
        )  # fmt: skip
        assert store.jobs.get(job.id).state is JobState.SUCCEEDED

    rules = load_alerts_config(None)  # the product's default rules

    def fault_alerts(batch_id: int, after_s: float = 0.0) -> set[str]:
        """States of the fault machine's score alerts, judged at the batch's last reading."""
        last = store.readings.get(batch_id).timestamps_us[-1] / 1e6 + after_s
        now = datetime.fromtimestamp(last, UTC)
        found = evaluate_machine("fault", store=store, config=rules, dispatcher=Jobs(), now=now)
        return {e.alert.state for e in found if e.alert and e.alert.rule != "no-data"}

    assert "firing" in fault_alerts(shifted["fault"][-1])  # the fault is alerted
    for name in machines:
        drift_retrain(name)
    assert auto_promote(store=store, registry=registry, settings=settings) == []  # no shadow
    assert "firing" in fault_alerts(shifted["fault"][-1])  # a challenger resolves nothing
    # the regime persists on one machine; the other's "regime" was a fault that ended
    for batch_id in add(store, machines["regime"], 200, shift=8 * spread):
        score_batch(batch_id, store=store, models=models)
    normal = add(store, machines["fault"], 200)
    for batch_id in normal:
        score_batch(batch_id, store=store, models=models)
    assert fault_alerts(normal[-1], after_s=60) == {"resolved"}  # over when the readings are

    assert auto_promote(store=store, registry=registry, settings=settings) == ["regime"]
    assert registry.alias_version("regime", CHAMPION) == 2
    assert registry.alias_version("fault", CHAMPION) == 1  # the gate refused the fault
    assert registry.alias_version("fault", CHALLENGER) == 2
    off = settings.model_copy(update={"drift": DriftSettings(promote=False)})
    assert auto_promote(store=store, registry=registry, settings=off) == []
