"""Configuration ranking against real services: a SQLite store holding a machine's
labelled history (synthetic, with injected faults), the session's MLflow store queried
with mlflow's own client, the API job on a real RabbitMQ with an in-process Celery
worker, and ``mmlw tune`` through click's runner."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from mmlw.api.app import create_app
from mmlw.cli import main
from mmlw.messaging.topology import Topology
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas import JobState
from mmlw.schemas.tuning import TuneRequest, TuneResult
from mmlw.services.tuning import create_tuning_job, run_tuning
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.workers.simulator import SyntheticMachine
from tests.conftest import TEST_SIGNING_KEY
from tests.integration.pipeline import delete_topology, wait_for
from tests.integration.test_api import running_pipeline as api_pipeline
from tests.integration.test_api import wait_for_job

START = datetime(2026, 11, 1, tzinfo=UTC)
API = "/api/v1"
GRID: dict[str, Any] = {
    "pca": {"n_components": [0.8, 0.99]},
    "pca_temporal": {"base": ["pca", "robust_zscore"], "windows": [[5], [30]]},
    "robust_zscore": {"aggregate": ["sum"]},
}
N_CONFIGS = 7  # 2 pca + 4 pca_temporal + 1 robust_zscore
N_FEATURE_STEPS = 3  # raw sensors, windows [5], windows [30]


def seed_history(store: Store, machine_id: str, n: int = 2400, labels: bool = True) -> None:
    """``n`` readings in batches of 200, with fault episodes labelled 1 (or no labels)."""
    source = SyntheticMachine(
        machine_id, seed=5, n_sensors=4, start=START, warmup=200, fault_every=250, fault_length=50
    )
    for _ in range(n // 200):
        batch = source.read(200).to_batch()
        store.readings.add(batch if labels else batch.model_copy(update={"labels": None}))


def children_of(tracking_uri: str, parent: str) -> list[Any]:
    client = MlflowClient(tracking_uri)
    experiment = client.get_run(parent).info.experiment_id
    return client.search_runs(  # type: ignore[no-any-return]
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{parent}'", max_results=1000
    )


def assert_ranked(result: TuneResult) -> None:
    done = [r for r in result.rows if r.error is None]
    assert [r.rank for r in result.rows] == list(range(1, len(result.rows) + 1))
    keys = [(-(r.f1 or 0.0) if result.labelled else r.flag_rate, r.false_alarm_rate) for r in done]
    assert keys == sorted(keys), keys


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    the_store = Store.open(settings.resolved_database_url)
    yield the_store
    the_store.close()


def test_tune_logs_one_child_run_per_config_ranks_by_f1_and_reuses_features(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    seed_history(store, "press-1")
    experiment = f"tune-{uuid.uuid4().hex[:8]}"
    progress: list[tuple[int, int]] = []
    request = TuneRequest(machine_id="press-1", grid=GRID, experiment=experiment)
    result = run_tuning(
        request,
        store=store,
        settings=settings,
        out=tmp_path / "out",
        on_config=lambda done, total: progress.append((done, total)),
    )

    assert (result.metric, result.labelled) == ("f1", True)
    assert (result.n_train, result.n_test, result.n_configs) == (1200, 1200, N_CONFIGS)
    assert progress == [(i, N_CONFIGS) for i in range(1, N_CONFIGS + 1)]
    assert (result.features_computed, result.features_requested) == (N_FEATURE_STEPS, N_CONFIGS)
    assert all(r.error is None for r in result.rows)
    assert_ranked(result)
    assert result.rows[0].f1 is not None and result.rows[0].f1 > result.rows[-1].f1  # type: ignore[operator]

    assert result.parent_run_id is not None
    children = children_of(settings.resolved_tracking_uri, result.parent_run_id)
    assert len(children) == N_CONFIGS
    by_id = {run.info.run_id: run for run in children}
    for row in result.rows:
        run = by_id[row.run_id]  # type: ignore[index]
        assert run.data.tags["mmlw.kind"] == "tuning"
        assert run.data.params["detector.name"] == row.detector
        assert run.data.metrics["rank"] == row.rank
        assert run.data.metrics["f1"] == pytest.approx(row.f1)
        assert {"false_alarm_rate", "fit_time_s", "score_time_s"} <= set(run.data.metrics)
    parent = MlflowClient(settings.resolved_tracking_uri).get_run(result.parent_run_id)
    assert parent.data.metrics["features_computed"] == N_FEATURE_STEPS
    assert parent.info.run_name == "tuning of press-1"

    assert (tmp_path / "out" / "tuning.html").stat().st_size > 1000
    assert (tmp_path / "out" / "ranking.csv").read_text().count("\n") == N_CONFIGS + 1
    assert result.figure is not None
    bars = result.figure["data"]
    assert len(bars) == 4  # metric, false-alarm rate, fit time, score time
    assert bars[0]["x"][0] == f"#1 {result.rows[0].detector}"
    assert bars[0]["hovertext"][0] == result.rows[0].label


def test_without_labels_configs_rank_by_the_held_out_flag_rate(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    seed_history(store, "press-2", n=1200, labels=False)
    request = TuneRequest(
        machine_id="press-2", grid=GRID, search="random", samples=4, seed=3, train_fraction=0.6
    )
    result = run_tuning(request, store=store, settings=settings, out=tmp_path, log_mlflow=False)
    assert (result.metric, result.labelled, result.n_configs) == ("heldout_flag_rate", False, 4)
    assert (result.n_train, result.n_test) == (720, 480)
    assert all(r.f1 is None and r.metric == r.flag_rate for r in result.rows)
    assert_ranked(result)
    assert result.parent_run_id is None


# --- the API job, on RabbitMQ with an in-process worker ---------------------------------


@pytest.mark.rabbitmq
@pytest.mark.slow
def test_tune_job_ranks_on_a_worker_and_registers_the_best_as_challenger(
    make_settings: Callable[..., Settings], rabbitmq_url: str
) -> None:
    settings = make_settings(broker_url=rabbitmq_url)
    try:
        with api_pipeline(settings) as pipeline:
            store, client = pipeline.context.store, pipeline.client
            seed_history(store, "press-3")
            response = client.post(
                f"{API}/machines/press-3/tune", json={"grid": GRID, "register_best": True}
            )
            assert response.status_code == 202, response.text
            job = response.json()
            assert (job["kind"], job["state"]) == ("tune", "queued")
            done = wait_for_job(client, job["id"])
            assert done["state"] == "succeeded", done["error"]
            result = TuneResult.model_validate(done["result"])
            assert result.n_configs == N_CONFIGS
            assert (result.features_computed, result.features_requested) == (
                N_FEATURE_STEPS,
                N_CONFIGS,
            )
            assert_ranked(result)
            assert result.figure is not None and result.parent_run_id is not None
            children = children_of(settings.resolved_tracking_uri, result.parent_run_id)
            assert len(children) == N_CONFIGS

            assert result.best_job_id is not None
            wait_for(
                lambda: store.jobs.get(result.best_job_id).state.finished,  # type: ignore[arg-type]
                timeout_s=60,
                what="train job of the best config",
            )
            train = store.jobs.get(result.best_job_id)  # type: ignore[arg-type]
            assert train.state is JobState.SUCCEEDED, train.error
            best = result.rows[0]
            assert (train.request["detector"], train.request["params"]) == (
                best.detector,
                best.params,
            )
            assert train.result is not None and train.result["aliases"] == ["challenger"]
            registry = pipeline.context.registry
            assert registry.alias_version("press-3", "challenger") == train.result["version"]
    finally:
        delete_topology(rabbitmq_url, Topology(settings.broker.namespace))


def test_the_tune_route_refuses_bad_grids_naming_the_field(
    settings: Settings, store: Store, registry: MlflowRegistry
) -> None:
    seed_history(store, "press-4", n=400)
    with TestClient(create_app(settings, store=store, registry=registry)) as client:

        def post(body: dict[str, Any], machine: str = "press-4") -> tuple[int, str]:
            response = client.post(f"{API}/machines/{machine}/tune", json=body)
            return response.status_code, str(response.json()["detail"])

        code, detail = post({"grid": {"nope": {}}})
        assert code == 422
        assert detail.startswith("grid.nope: unknown detector; choose from ['adaptive', ")
        code, detail = post({"grid": {"pca": {"n_comp": [2]}}})
        assert code == 422 and detail.startswith("grid.pca.n_comp: not a parameter of 'pca'")
        code, detail = post({"grid": {"pca": {}}, "seeds": 1})
        assert code == 422 and "seeds" in detail
        code, detail = post({"grid": {}})
        assert code == 422 and "grid" in detail
        assert post({"grid": {"pca": {}}}, machine="nobody")[0] == 404
        assert store.jobs.list() == []


def test_a_running_tune_job_shows_its_progress(settings: Settings, store: Store) -> None:
    seed_history(store, "press-7", n=400)
    job = create_tuning_job(TuneRequest(machine_id="press-7", grid=GRID), store=store)
    store.jobs.progress(str(job.id), 1, N_CONFIGS)  # queued: not yet
    assert store.jobs.get(job.id).result is None
    store.jobs.start(str(job.id))
    store.jobs.progress(str(job.id), 2, N_CONFIGS)
    assert store.jobs.get(job.id).result == {"progress": {"done": 2, "total": N_CONFIGS}}


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli(settings: Settings, tracking_uri: str, registry: MlflowRegistry) -> Callable[..., Result]:
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("MMLW_")}
    env.update(
        MMLW_ENVIRONMENT="test",
        MMLW_DATA_DIR=str(settings.data_dir),
        MMLW_MLFLOW_TRACKING_URI=tracking_uri,
        MMLW_MODELS__REGISTERED_MODEL_PREFIX=settings.models.registered_model_prefix,
        MMLW_MODELS__SIGNING_KEY=TEST_SIGNING_KEY,
        MMLW_BROKER__URL="memory://",
        MLFLOW_LOGGING_LEVEL=None,
    )
    runner = CliRunner()
    return lambda *args: runner.invoke(main, list(args), env=env, catch_exceptions=True)


def test_mmlw_tune_prints_the_ranking_and_registers_the_best_as_challenger(
    cli: Callable[..., Result], settings: Settings, store: Store, tmp_path: Path
) -> None:
    seed_history(store, "press-5", n=1200)
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "pca: {n_components: [0.8, 0.99]}\n"
        "pca_temporal: {base: [pca, robust_zscore], windows: [5, 30]}\n"
    )
    result = cli("tune", "press-5", "--grid", str(grid), "--register-best", "--inline")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["rank", "config", "f1"]
    assert lines[1].split()[0] == "1" and lines[6].split()[0] == "6"
    assert "6 configs on 600 + 600 readings of press-5" in result.stdout
    assert "feature frames computed 3 times for 6 configs" in result.stdout
    assert "(challenger)" in lines[-1]
    version = int(lines[-1].split(" v")[1].split()[0])
    registry = MlflowRegistry.from_settings(settings)
    assert registry.alias_version("press-5", "challenger") == version

    by_options = cli(
        "tune", "press-5", "--detector", "pca", "--param", "n_components=[0.8,0.9]", "--json"
    )
    assert by_options.exit_code == 0, by_options.output
    assert '"n_configs": 2' in by_options.stdout


def test_mmlw_tune_refuses_a_bad_grid_in_one_line(
    cli: Callable[..., Result], store: Store, tmp_path: Path
) -> None:
    seed_history(store, "press-6", n=400)
    grid = tmp_path / "grid.yaml"
    grid.write_text("pca: {n_components: [0.9], whiten: [true]}\n")
    bad = cli("tune", "press-6", "--grid", str(grid))
    assert bad.exit_code == 1
    assert bad.stderr.strip().splitlines() == [
        "Error: grid.pca.whiten: not a parameter of 'pca'; known: ['eps', 'n_components']"
    ]
    unknown = cli("tune", "press-6", "--detector", "nope")
    assert unknown.exit_code == 1 and "grid.nope: unknown detector" in unknown.stderr
    unused = cli("tune", "press-6", "--detector", "pca", "--param", "n_neighbors=[5]")
    assert unused.exit_code == 1 and "--param: ['n_neighbors'] not accepted" in unused.stderr
    options = cli("tune", "press-6", "--detector", "pca", "--train-fraction", "1.5")
    assert options.exit_code == 1
    assert options.stderr.strip() == ("Error: train_fraction: Input should be less than 0.95")
