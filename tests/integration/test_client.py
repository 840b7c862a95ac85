"""``mmlw.client.Client`` against a real running backend: the in-process pipeline
(ingest consumer + Celery worker on ``memory://``, SQLite store, the session's MLflow
store) and the API served by uvicorn on a loopback port: :mod:`tests.browser.system`'s
live system (its dashboard runs too, unused here).

The whole operator cycle through the client — publish, train (job wait), challenger,
gated promotion, history, anomalous batch, scores, alert, acknowledge — each result
checked in the API; the error tree from real 401/403/404/409/422 answers and a refused
connection; and the README's example, run as written against the same server.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from mmlw import errors
from mmlw.client import (
    Client,
    ClientError,
    Conflict,
    Forbidden,
    InvalidInput,
    JobFailed,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from mmlw.ports import free_port
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas import JobState, ReadingsBatch, TrainOptions
from mmlw.settings import PromotionSettings
from mmlw.workers.simulator import SyntheticMachine
from tests.browser.system import OPERATOR_KEY, LiveSystem, live_system, system_settings
from tests.integration.pipeline import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("client")]
README = Path(__file__).resolve().parents[2] / "README.md"


def client_of(system: LiveSystem, api_key: str | None = OPERATOR_KEY) -> Client:
    return Client(system.api_url, api_key=api_key, timeout=30)


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, tracking_uri: str, registry: MlflowRegistry
) -> Iterator[LiveSystem]:
    # ``registry`` makes sure the session's MLflow store and experiment exist
    settings = system_settings(tmp_path_factory.mktemp("client"), tracking_uri)
    promotion = PromotionSettings(gate="shadow", min_readings=150)
    models = settings.models.model_copy(update={"promotion": promotion})
    with live_system(settings.model_copy(update={"models": models})) as live:
        yield live


@pytest.fixture
def mmlw(system: LiveSystem) -> Iterator[Client]:
    with client_of(system) as client:
        yield client


def publish(mmlw: Client, machine: SyntheticMachine, n: int, shift: float = 0.0) -> None:
    """``n`` readings of ``machine`` through the client, in batches of 100."""
    for _ in range(0, n, 100):
        batch = machine.read(100).to_batch()
        if shift:
            batch = batch.model_copy(update={"values": (np.asarray(batch.values) + shift).tolist()})
        accepted = mmlw.readings.publish(batch)
        assert (accepted.machine_id, accepted.readings) == (machine.machine_id, 100)


def stored(mmlw: Client, machine_id: str) -> tuple[int, int]:
    """(readings, scored) of a machine; (0, 0) before its first reading is stored."""
    try:
        machine = mmlw.machines.get(machine_id)
    except NotFound:
        return 0, 0
    return machine.n_readings, machine.n_scored


def shadow_scored(system: LiveSystem, machine_id: str) -> int:
    return system.pipeline.store.scores.count(machine_id, role="challenger")


def test_train_promote_score_alert_acknowledge_cycle(system: LiveSystem, mmlw: Client) -> None:
    machine = SyntheticMachine("press-1", seed=11, faults=())
    assert mmlw.health()["status"] == "ok"
    publish(mmlw, machine, 400)
    wait_for(lambda: stored(mmlw, "press-1")[0] == 400, what="400 readings stored")

    # v1: the first version becomes champion and scores the stored readings
    job = mmlw.jobs.train("press-1", TrainOptions(last_n=400))
    assert job.state is JobState.QUEUED and job.machine_id == "press-1"
    done = mmlw.jobs.wait(job, timeout=120)
    assert done.result is not None
    assert (done.result["version"], done.result["aliases"]) == (1, ["champion"])
    assert mmlw.jobs.get(job.id).state is JobState.SUCCEEDED
    assert job.id in {j.id for j in mmlw.jobs.list(machine_id="press-1")}
    wait_for(lambda: stored(mmlw, "press-1")[1] == 400, what="backfill scored")
    assert mmlw.machines.get("press-1").champion_version == 1

    # v2: a quieter challenger on the same readings, scoring in shadow
    options = {"last_n": 400, "threshold_quantile": 0.999, "reason": "quieter threshold"}
    v2 = mmlw.jobs.wait(mmlw.jobs.train("press-1", options), timeout=120)
    assert v2.result is not None and v2.result["aliases"] == ["challenger"]
    versions = {v.version: v.aliases for v in mmlw.models.list("press-1")}
    assert versions == {1: ["champion"], 2: ["challenger"]}
    system.pipeline.context.models.invalidate("press-1")  # the worker asks: v2 is challenger
    publish(mmlw, machine, 200)
    wait_for(lambda: shadow_scored(system, "press-1") >= 200, what="shadow scores of v2")

    # promotion through the gate; v1 cannot be promoted again (409 with the reason)
    gate = mmlw.models.gate("press-1")
    assert gate["kind"] == "shadow" and gate["passed"], gate
    moved = mmlw.models.promote("press-1", by="alice", reason="quieter")
    assert moved.gate is not None and moved.gate["passed"]
    assert (moved.event.from_version, moved.event.to_version) == (1, 2)
    with pytest.raises(Conflict) as refused:
        mmlw.models.promote("press-1", version=2, by="alice")
    assert (
        refused.value.status == 409 and refused.value.reason == "v2 is already champion of press-1"
    )
    history = [
        (e.alias, e.from_version, e.to_version, e.actor) for e in mmlw.models.history("press-1")
    ]
    assert history[:2] == [("champion", None, 1, "training"), ("challenger", None, 2, "training")]
    assert ("champion", 1, 2, "alice") in history[2:]
    assert mmlw.models.at("press-1", datetime.now(UTC)).champion == 2
    assert mmlw.machines.get("press-1").champion_version == 2

    # an anomalous batch: scored by v2, flagged, and an alert fires
    system.pipeline.context.models.invalidate("press-1")  # the worker asks: v2 is champion
    before = stored(mmlw, "press-1")[1]
    publish(mmlw, machine, 100, shift=50.0)
    wait_for(lambda: stored(mmlw, "press-1")[1] >= before + 100, what="anomalous batch scored")
    scores = mmlw.scores.get("press-1", limit=100)
    assert all(scores.flags) and set(scores.model_versions) == {2}
    assert scores.top_sensors[-1][0].contribution > 0
    page = mmlw.scores.page("press-1", limit=100, max_points=10)
    # the total is every score in range, whatever the limit
    assert page.total == stored(mmlw, "press-1")[1] and len(page.item.scores) < 100

    def firing() -> list[int]:
        alerts = mmlw.alerts.list(machine_id="press-1", state="open")
        return [a.id for a in alerts if a.state == "firing"]

    wait_for(lambda: bool(firing()), what="a firing alert for press-1")
    alert_id = firing()[0]

    # acknowledge through the client, and see it in the API
    acked = mmlw.alerts.acknowledge(alert_id, by="alice", comment="on it")
    assert acked.acknowledged and acked.acknowledged_by == "alice"
    shown = mmlw.alerts.get(alert_id)
    assert (shown.acknowledged, shown.acknowledged_by, shown.ack_comment) == (
        True,
        "alice",
        "on it",
    )
    assert shown.model_version == 2 and shown.machine_id == "press-1"
    assert isinstance(mmlw.alerts.deliveries(alert_id), list)
    assert mmlw.alerts.unacknowledge(alert_id).acknowledged is False
    assert mmlw.alerts.resolve(alert_id, by="alice").state == "resolved"
    with pytest.raises(Conflict, match="is resolved"):
        mmlw.alerts.acknowledge(alert_id, by="alice")
    assert "rules" in mmlw.alerts.rules()
    assert all(d.alert_id for d in mmlw.deliveries.list())

    # and back to v1, in one call
    back = mmlw.models.rollback("press-1", 1, by="carol")
    assert (back.event.from_version, back.event.to_version, back.gate) == (2, 1, None)
    assert mmlw.models.history("press-1")[-1].actor == "carol"
    assert "mmlw_" in mmlw.metrics()


def test_silences_and_dead_letters(mmlw: Client) -> None:
    silence = mmlw.silences.create(
        {"machine_id": "press-*"}, datetime.now(UTC) + timedelta(hours=1), created_by="bob"
    )
    assert silence.active and silence.id in {s.id for s in mmlw.silences.list(active=True)}
    assert mmlw.silences.delete(silence.id).active is False
    assert silence.id not in {s.id for s in mmlw.silences.list(active=True)}

    assert mmlw.dead_letters.purge(all=True) >= 0
    assert mmlw.dead_letters.list() == []
    with pytest.raises(NotFound):
        mmlw.dead_letters.get(12345)
    with pytest.raises(NotFound):
        mmlw.dead_letters.replay(12345)


def test_errors_from_the_real_server(system: LiveSystem, mmlw: Client) -> None:
    with client_of(system, "not-a-key") as stranger:
        with pytest.raises(Unauthorized) as unauthorized:
            stranger.machines.list()
        assert stranger.health()["status"] == "ok"  # needs no key
    assert unauthorized.value.status == 401
    assert str(unauthorized.value) == "401: X-API-Key: missing or not valid"

    key, _ = system.pipeline.store.api_keys.create("reader", ["read"])
    with client_of(system, key) as reader:
        assert isinstance(reader.machines.list(), list)
        with pytest.raises(Forbidden, match="lacks scope 'operate'"):
            reader.jobs.train("press-1")

    with pytest.raises(NotFound, match="no-such-machine") as missing:
        mmlw.machines.get("no-such-machine")
    assert missing.value.status == 404 and isinstance(missing.value, errors.NotFound)

    with pytest.raises(InvalidInput) as invalid:
        mmlw.jobs.train("press-1", {"last_n": 1})
    assert invalid.value.status == 422 and invalid.value.field == "last_n"
    with pytest.raises(InvalidInput) as unknown:
        mmlw.models.at("press-1", datetime(2026, 1, 1))  # no time zone
    assert unknown.value.field == "at"

    nowhere = Client(f"http://127.0.0.1:{free_port()}")
    with nowhere, pytest.raises(ServiceUnavailable, match="API unreachable") as unreachable:
        nowhere.health()
    assert unreachable.value.status is None and isinstance(unreachable.value, ClientError)


def test_wait_raises_job_failed_for_a_failed_job(mmlw: Client) -> None:
    publish(mmlw, SyntheticMachine("tiny-1", seed=3, faults=()), 100)
    wait_for(lambda: stored(mmlw, "tiny-1")[0] == 100, what="tiny-1 stored")
    job = mmlw.jobs.train("tiny-1", {"min_readings": 10_000})
    with pytest.raises(JobFailed) as failed:
        mmlw.jobs.wait(job.id, timeout=120)
    assert failed.value.job.state is JobState.FAILED and failed.value.job.error
    assert failed.value.job.id == job.id


def test_history_import_and_tune_through_the_client(mmlw: Client, tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rng = np.random.default_rng(7)
    rows = [
        f"{(start + timedelta(seconds=i)).isoformat()},{a:.4f},{b:.4f}"
        for i, (a, b) in enumerate(rng.normal(1.0, 0.05, size=(300, 2)))
    ]
    history = tmp_path / "history.csv"
    history.write_text("datetime,Current,Pressure\n" + "\n".join(rows) + "\n")
    report = mmlw.readings.import_file("lathe-1", history, batch_rows=100)
    assert (report.new_rows, report.new_batches, report.columns) == (
        300,
        3,
        ["Current", "Pressure"],
    )
    again = mmlw.readings.import_file("lathe-1", history.read_bytes(), batch_rows=100)
    assert (again.rows, again.new_rows) == (300, 0)  # idempotent
    with pytest.raises(InvalidInput):
        mmlw.readings.import_file("lathe-1", b"datetime,Current\nyesterday,1.0\n")
    assert mmlw.readings.page("lathe-1", max_points=10).total == 300

    job = mmlw.jobs.tune("lathe-1", {"grid": {"pca": {}, "robust_zscore": {}}})
    assert job.kind == "tune"
    ranked = mmlw.jobs.wait(job, timeout=120).result
    assert ranked is not None and [r["rank"] for r in ranked["rows"]] == [1, 2]
    with pytest.raises(InvalidInput) as bad_grid:
        mmlw.jobs.tune("lathe-1", {"grid": {"nope": {}}})
    assert bad_grid.value.field.startswith("grid")


def readme_example() -> str:
    """The README's Python client example (the block after the "Python client" heading)."""
    section = README.read_text().split("## Python client", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "README: no python example under '## Python client'"
    return found.group(1)


def test_the_readme_example_runs_as_written(system: LiveSystem, mmlw: Client) -> None:
    start = datetime.now(UTC) - timedelta(minutes=20)
    rng = np.random.default_rng(5)
    for first in range(0, 600, 200):
        times = [start + timedelta(seconds=first + i) for i in range(200)]
        values = rng.normal([0.8, 1.0], 0.02, size=(200, 2)).tolist()
        mmlw.readings.publish(
            ReadingsBatch.of_rows("pump-1", ["Current", "Pressure"], times, values)
        )
    wait_for(lambda: stored(mmlw, "pump-1")[0] == 600, what="pump-1 stored")

    code = readme_example()
    assert 'Client("http://127.0.0.1:8000", api_key="my-operator-key")' in code
    code = code.replace("http://127.0.0.1:8000", system.api_url).replace(
        "my-operator-key", OPERATOR_KEY
    )
    output = io.StringIO()
    with redirect_stdout(output):
        exec(compile(code, "README.md", "exec"), {})
    assert "trained version 1 ['champion']" in output.getvalue(), output.getvalue()
