"""The model lifecycle on the real RabbitMQ and a real MLflow (SQLite store): v1
champion, v2 challenger scoring in shadow, gated promotion (passed and refused),
rollback, alias history, which version scored what, an alias move reaching a running
worker, and drift-triggered retraining on a machine whose normal regime shifts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mmlw.messaging.pika_publisher import PikaReadingsPublisher
from mmlw.schemas import JobState, TrainRequest
from mmlw.services.jobs import submit_training
from mmlw.services.retraining import auto_promote
from mmlw.settings import DriftSettings, PromotionSettings, Settings
from mmlw.store import Store
from mmlw.store.packing import us_to_datetimes
from mmlw.workers.simulator import SyntheticMachine
from tests.conftest import ON_THE_MLFLOW_SERVER
from tests.integration.pipeline import (
    Pipeline,
    pipeline_stack,
    wait_for,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]
API = "/api/v1"


def lifecycle_settings(
    make_settings: Callable[..., Settings], rabbitmq_url: str, **models: object
) -> Settings:
    settings = make_settings(broker_url=rabbitmq_url)
    return settings.model_copy(update={"models": settings.models.model_copy(update=models)})


@pytest.fixture
def stack(
    make_settings: Callable[..., Settings], rabbitmq_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[Pipeline, PikaReadingsPublisher, TestClient]]:
    models = dict(request.param)
    mlflow = models.pop("mlflow", "embedded")
    settings = lifecycle_settings(make_settings, rabbitmq_url, **models)
    if mlflow == "server":  # as compose runs it
        uri = request.getfixturevalue("mlflow_server_uri")
        settings = settings.model_copy(update={"mlflow_tracking_uri": uri})
    with pipeline_stack(settings, rabbitmq_url) as stack:
        yield stack


def publish(
    pub: PikaReadingsPublisher, machine: SyntheticMachine, n: int, shift: float = 0.0
) -> list[int]:
    """``n`` readings in batches of 20 (``shift`` added to every sensor); their times (us)."""
    stamps: list[int] = []
    for _ in range(0, n, 20):
        batch = machine.read(20).to_batch()
        if shift:
            batch = batch.model_copy(update={"values": (np.asarray(batch.values) + shift).tolist()})
        pub.publish(batch)
        stamps.extend(int(t.timestamp() * 1e6) for t in batch.timestamps)
    return stamps


def train(pipeline: Pipeline, machine_id: str, **options: object) -> dict[str, object]:
    job = submit_training(
        TrainRequest(machine_id=machine_id, last_n=400, **options),  # type: ignore[arg-type]
        store=pipeline.store,
        dispatcher=pipeline.context.dispatcher,
    )
    wait_for(lambda: pipeline.store.jobs.get(job.id).state.finished, what="train job")
    done = pipeline.store.jobs.get(job.id)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.result is not None
    return done.result


def scored(store: Store, machine_id: str, role: str = "champion") -> int:
    return store.scores.count(machine_id, role=role)


def versions_of(store: Store, machine_id: str, stamps: list[int]) -> set[int]:
    """The versions whose champion scores cover these readings."""
    wanted = set(stamps)
    found = set()
    for part in store.scores.query(machine_id):
        if wanted & set(part.timestamps_us.tolist()):
            found.add(part.model_version)
    return found


@pytest.mark.parametrize(
    "stack",
    [
        {"promotion": PromotionSettings(gate="shadow", min_readings=150)},
        pytest.param(
            {"promotion": PromotionSettings(gate="shadow", min_readings=150), "mlflow": "server"},
            marks=ON_THE_MLFLOW_SERVER,
        ),
    ],
    ids=["embedded-mlflow", "mlflow-server"],
    indirect=True,
)
def test_champion_challenger_shadow_gated_promotion_rollback_and_history(
    stack: tuple[Pipeline, PikaReadingsPublisher, TestClient],
) -> None:
    pipeline, pub, client = stack
    store = pipeline.store
    machine = SyntheticMachine("mill-1", seed=11, faults=())
    publish(pub, machine, 400)
    wait_for(lambda: store.machines.get("mill-1").n_readings == 400, what="readings")
    # pca: its threshold follows threshold_quantile (adaptive's is its floor whatever the
    # quantile), which is how this test makes a quieter and a too sensitive version
    v1 = train(pipeline, "mill-1", detector="pca")
    assert (v1["version"], v1["aliases"]) == (1, ["champion"])
    wait_for(lambda: scored(store, "mill-1") == 400, what="backfill")

    # v2 becomes challenger and scores in shadow next to the champion
    v2 = train(
        pipeline, "mill-1", detector="pca", threshold_quantile=0.999, reason="quieter threshold"
    )
    assert (v2["version"], v2["aliases"]) == (2, ["challenger"])
    shadowed = publish(pub, machine, 200)
    wait_for(lambda: scored(store, "mill-1", "challenger") >= 200, what="shadow scores")
    assert versions_of(store, "mill-1", shadowed) == {1}  # the champion's scores count
    assert store.alerts.list() == []  # shadow never alerts

    gate = client.get(f"{API}/machines/mill-1/models/gate").json()
    assert gate["kind"] == "shadow" and gate["passed"] and gate["n_readings"] >= 150
    promoted = client.post(
        f"{API}/machines/mill-1/models/promote", json={"by": "alice", "reason": "quieter"}
    )
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["gate"]["passed"] and promoted.json()["event"]["to_version"] == 2

    # the running worker picks the move up without a restart, once its alias cache's
    # entry is older than the TTL (nothing here tells it: the cache is only asked)
    models = pipeline.context.models
    wait_for(
        lambda: (served := models.get("mill-1")) is not None and served.version == 2,
        timeout_s=10 * pipeline.settings.models.alias_cache_ttl_s,
        what="the worker's model cache serving v2",
    )
    after = publish(pub, machine, 60)
    wait_for(
        lambda: scored(store, "mill-1") >= 660 and versions_of(store, "mill-1", after) == {2},
        what=lambda: f"scores by v2, have {versions_of(store, 'mill-1', after)}",
    )

    # a noisy v3 does not pass the gate
    v3 = train(pipeline, "mill-1", detector="pca", threshold_quantile=0.6, reason="too sensitive")
    assert v3["aliases"] == ["challenger"]
    models.invalidate("mill-1")  # "no challenger" was cached: the worker asks again
    publish(pub, machine, 200)
    wait_for(
        lambda: scored(store, "mill-1", "challenger") >= 400,
        what=lambda: (
            f"v3 shadow scores: {scored(store, 'mill-1', 'challenger')} shadow, "
            f"{scored(store, 'mill-1')} champion"
        ),
    )
    refused = client.post(f"{API}/machines/mill-1/models/promote", json={"by": "bob"})
    assert refused.status_code == 409 and "refused" in refused.json()["detail"]

    # rollback to v1, in one call
    back = client.post(f"{API}/machines/mill-1/models/rollback", json={"version": 1, "by": "carol"})
    assert back.status_code == 200 and back.json()["event"]["from_version"] == 2
    models.invalidate("mill-1")  # the worker asks again: v1 is champion
    rolled = publish(pub, machine, 60)
    wait_for(
        lambda: scored(store, "mill-1") >= 920 and versions_of(store, "mill-1", rolled) == {1},
        what=lambda: f"scores by v1 again, have {versions_of(store, 'mill-1', rolled)}",
    )

    history = client.get(f"{API}/machines/mill-1/models/history").json()
    assert [(e["alias"], e["from_version"], e["to_version"], e["actor"]) for e in history] == [
        ("champion", None, 1, "training"),
        ("challenger", None, 2, "training"),
        ("champion", 1, 2, "alice"),
        ("challenger", 2, None, "alice"),
        ("challenger", None, 3, "training"),
        ("champion", 2, 1, "carol"),
    ]
    assert "shadow gate" in history[2]["reason"] and history[5]["reason"].startswith("rollback")

    # every stored score names its version, and the API says who scored a reading when
    for part in store.scores.query("mill-1"):
        assert part.model_version in (1, 2)
    # (reading times are the simulator's clock, alias moves the wall clock: ask for each)
    at = us_to_datetimes(np.array([after[0]]))[0].isoformat()
    which = client.get(f"{API}/machines/mill-1/models/at", params={"at": at}).json()
    assert which["scored_by"] == 2
    for event, champion in ((history[2], 2), (history[5], 1)):
        then = client.get(f"{API}/machines/mill-1/models/at", params={"at": event["at"]}).json()
        assert then["champion"] == champion
    versions = {v["version"]: v for v in client.get(f"{API}/machines/mill-1/models").json()}
    assert versions[1]["aliases"] == ["champion"] and versions[3]["aliases"] == ["challenger"]


@pytest.mark.parametrize(
    "stack",
    [
        {
            "drift": DriftSettings(
                threshold=500.0, min_readings=200, train_readings=300, min_regime_s=300
            )
        }
    ],
    indirect=True,
)
def test_a_regime_shift_triggers_exactly_one_retraining_on_post_shift_readings(
    stack: tuple[Pipeline, PikaReadingsPublisher, TestClient],
) -> None:
    pipeline, pub, _client = stack
    store = pipeline.store
    machine = SyntheticMachine("kiln-1", seed=4, faults=())
    publish(pub, machine, 400)
    wait_for(lambda: store.machines.get("kiln-1").n_readings == 400, what="readings")
    # a detector that never adapts by itself (the default one accepts a regime that
    # outlasts its regime_rows on its own, and drift then sees normal scores)
    train(pipeline, "kiln-1", detector="pca")
    publish(pub, machine, 300)
    wait_for(lambda: scored(store, "kiln-1") == 700, what="normal scores")
    assert store.drift.get("kiln-1") is not None and store.drift.get("kiln-1").status == "watching"  # type: ignore[union-attr]

    spread = float(store.readings.window("kiln-1", last_n=400)[0].std().mean())
    shifted = publish(pub, machine, 700, shift=8 * spread)
    shift_start = us_to_datetimes(np.array([shifted[0]]))[0]

    def drift_jobs() -> list[object]:
        return [j for j in store.jobs.list("kiln-1") if "drift" in str(j.request.get("reason"))]

    wait_for(lambda: len(drift_jobs()) == 1, timeout_s=90, what="a drift retraining job")
    (job,) = drift_jobs()
    wait_for(lambda: store.jobs.get(job.id).state.finished, what="the retraining")  # type: ignore[attr-defined]
    done = store.jobs.get(job.id)  # type: ignore[attr-defined]
    assert done.state is JobState.SUCCEEDED, done.error
    # the new version is challenger; it scores the regime in shadow and passes the gate
    registry = pipeline.context.registry
    assert done.result is not None and done.result["aliases"] == ["challenger"]
    assert registry.alias_version("kiln-1", "champion") == 1
    pipeline.context.models.invalidate("kiln-1")  # the worker asks again: v2 is challenger
    shadowed = publish(pub, machine, 300, shift=8 * spread)
    wait_for(lambda: scored(store, "kiln-1", role="challenger") >= 200, timeout_s=90, what="shadow")
    settings = pipeline.settings.models
    assert not settings.auto_promote  # drift challengers are promoted through the gate anyway
    assert auto_promote(store=store, registry=registry, settings=settings) == ["kiln-1"]
    assert registry.alias_version("kiln-1", "champion") == 2
    # trained on the new regime only: its window starts at or after the shift
    assert datetime.fromisoformat(str(done.request["start"])) > shift_start - timedelta(seconds=1)
    (v2,) = [v for v in pipeline.context.registry.versions("kiln-1") if v.version == 2]
    assert v2.tags["mmlw.reason"].startswith("drift: regime changed at")
    assert v2.metrics["n_readings"] <= len(shifted)
    wait_for(lambda: scored(store, "kiln-1") >= 1400 + len(shadowed), timeout_s=90, what="all")

    # the new champion sees the new regime as normal: no second retraining
    pipeline.context.models.invalidate("kiln-1")  # the worker asks again: v2 is champion
    later = publish(pub, machine, 300, shift=8 * spread)
    wait_for(
        lambda: versions_of(store, "kiln-1", later) == {2} and scored(store, "kiln-1") >= 2000,
        timeout_s=90,
        what=lambda: f"the new regime scored by v2: {versions_of(store, 'kiln-1', later)}",
    )
    flags = np.concatenate([p.flags for p in store.scores.query("kiln-1") if p.model_version == 2])
    assert flags.mean() < 0.2
    assert len(drift_jobs()) == 1 and len(store.jobs.list("kiln-1")) == 2
