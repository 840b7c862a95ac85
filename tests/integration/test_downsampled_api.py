"""``max_points`` on the readings and scores endpoints, against a real scored run:
what a plot of the downsampled series must still show (extremes, every anomaly's
neighbourhood, first and last reading) and the total in ``X-Total-Count``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mmlw.api.app import create_app
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.settings import Settings
from mmlw.workers.simulator import SyntheticMachine
from tests.browser.system import system_settings
from tests.integration.pipeline import running_pipeline, wait_for

# its module/session fixture is started once, on one xdist worker (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("downsampled-api")

API = "/api/v1"
N = 6_000
WARMUP = 500


@pytest.fixture(scope="module")
def scored_client(
    tmp_path_factory: pytest.TempPathFactory, tracking_uri: str, registry: MlflowRegistry
) -> Iterator[TestClient]:
    settings: Settings = system_settings(tmp_path_factory.mktemp("downsample"), tracking_uri)
    settings = settings.model_copy(update={"api": settings.api.model_copy(update={"keys": []})})
    machine = SyntheticMachine("pump-1", seed=5, warmup=WARMUP, fault_every=300, fault_length=30)
    with running_pipeline(settings) as pipeline:
        app = create_app(
            settings,
            store=pipeline.store,
            registry=pipeline.context.registry,
            dispatcher=pipeline.context.dispatcher,
        )
        with TestClient(app) as client:
            post = _poster(client)
            post(machine.read(WARMUP).to_batch().to_wire())
            wait_for(lambda: _counts(client)[0] == WARMUP, what="warm-up readings")
            job = client.post(f"{API}/machines/pump-1/train", json={"last_n": WARMUP}).json()
            wait_for(
                lambda: client.get(f"{API}/jobs/{job['id']}").json()["state"] == "succeeded",
                what="training",
            )
            for _ in range((N - WARMUP) // 500):
                post(machine.read(500).to_batch().to_wire())
            wait_for(lambda: _counts(client) == (N, N), what="every reading scored")
            yield client


def _poster(client: TestClient) -> Callable[[str], None]:
    def post(body: str) -> None:
        response = client.post(
            f"{API}/machines/pump-1/readings",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 202, response.text

    return post


def _counts(client: TestClient) -> tuple[int, int]:
    response = client.get(f"{API}/machines/pump-1")
    if response.status_code != 200:
        return 0, 0
    return response.json()["n_readings"], response.json()["n_scored"]


def _us(stamps: list[str]) -> np.ndarray:
    return np.array([datetime.fromisoformat(s).timestamp() * 1e6 for s in stamps])


def test_without_max_points_nothing_changes(scored_client: TestClient) -> None:
    readings = scored_client.get(f"{API}/machines/pump-1/readings", params={"limit": N})
    scores = scored_client.get(f"{API}/machines/pump-1/scores", params={"limit": N})
    assert len(readings.json()["timestamps"]) == N
    assert len(scores.json()["scores"]) == N
    assert readings.headers["X-Total-Count"] == scores.headers["X-Total-Count"] == str(N)


def test_downsampled_readings_keep_each_sensors_extremes(scored_client: TestClient) -> None:
    full = scored_client.get(f"{API}/machines/pump-1/readings", params={"limit": N}).json()
    response = scored_client.get(
        f"{API}/machines/pump-1/readings", params={"limit": N, "max_points": 400}
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Total-Count"] == str(N)
    small = response.json()
    assert 50 < len(small["timestamps"]) <= 400
    assert small["timestamps"][0] == full["timestamps"][0]
    assert small["timestamps"][-1] == full["timestamps"][-1]
    assert set(small["timestamps"]) <= set(full["timestamps"])
    assert len(small["labels"]) == len(small["values"]) == len(small["timestamps"])
    whole, kept = np.array(full["values"]), np.array(small["values"])
    assert np.array_equal(whole.max(axis=0), kept.max(axis=0))
    assert np.array_equal(whole.min(axis=0), kept.min(axis=0))


def test_downsampled_scores_keep_every_anomaly_in_view(scored_client: TestClient) -> None:
    full = scored_client.get(f"{API}/machines/pump-1/scores", params={"limit": N}).json()
    response = scored_client.get(
        f"{API}/machines/pump-1/scores", params={"limit": N, "max_points": 300, "top": 2}
    )
    assert response.headers["X-Total-Count"] == str(N)
    small = response.json()
    assert 30 < len(small["scores"]) <= 300
    for name in ("timestamps", "thresholds", "flags", "model_versions", "top_sensors"):
        assert len(small[name]) == len(small["scores"]), name
    # kept for flagged readings and each batch's worst (mmlw.store.compact)
    tops = zip(small["top_sensors"], small["flags"], strict=True)
    assert all(len(top) == 2 for top, flagged in tops if flagged)
    assert all(len(top) in (0, 2) for top in small["top_sensors"])
    assert max(small["scores"]) == max(full["scores"])
    assert min(small["scores"]) == min(full["scores"])
    # every flagged reading has a flagged neighbour in the downsampled series, no further
    # away than one time bucket (300 points: 3 per bucket -> ~99 buckets)
    flagged_full = _us(full["timestamps"])[np.array(full["flags"])]
    flagged_small = _us(small["timestamps"])[np.array(small["flags"])]
    assert flagged_full.size > 0
    span = _us(full["timestamps"])[-1] - _us(full["timestamps"])[0]
    bucket = span / ((300 - 2) // 3)
    nearest = np.abs(flagged_full[:, None] - flagged_small[None, :]).min(axis=1)
    assert nearest.max() <= bucket


def test_max_points_is_validated(scored_client: TestClient) -> None:
    for path in ("readings", "scores"):
        response = scored_client.get(f"{API}/machines/pump-1/{path}", params={"max_points": 2})
        assert response.status_code == 422
        assert "max_points" in response.text
