"""The machine overview costs the same for 1 machine as for 100: ``GET /machines`` and
``GET /scores/latest`` issue as many SQL statements and registry (MLflow) calls, and the
dashboard's overview as many API requests, whatever the number of machines; and what
they return is what the per-machine endpoints say."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from mmlw.api.app import create_app
from mmlw.frontend.api_client import ApiClient
from mmlw.frontend.pages.overview import SPARKLINE_POINTS, fetch_rows
from mmlw.registry.base import CHALLENGER, CHAMPION
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas.readings import ReadingsBatch
from mmlw.settings import Settings
from mmlw.store import ScoreRecord, Store
from tests.conftest import TEST_SIGNING_KEY
from tests.support.forwarding import forwarding

API = "/api/v1"
T0 = datetime(2026, 5, 1, tzinfo=UTC)
COLUMNS = ["a", "b"]


class Counted:
    """Forwards every attribute of ``target``; notes the name of each method called."""

    def __init__(self, target: Any, calls: list[str]) -> None:
        self._target, self._calls = target, calls

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(name)
            return value(*args, **kwargs)

        return call


class CountedMlflowRegistry(MlflowRegistry):
    """The real registry, noting every call it makes to MLflow's client."""

    def __init__(self, *args: Any, mlflow_calls: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mlflow_calls = mlflow_calls

    @property
    def client(self) -> Any:
        return Counted(super().client, self._mlflow_calls)


@dataclass
class Counts:
    statements: list[str] = field(default_factory=list)
    registry: list[str] = field(default_factory=list)  # calls of the app's registry
    mlflow: list[str] = field(default_factory=list)  # calls the registry makes to MLflow
    requests: list[str] = field(default_factory=list)  # the dashboard's API requests

    def clear(self) -> None:
        for seen in (self.statements, self.registry, self.mlflow, self.requests):
            seen.clear()


@dataclass
class Overview:
    store: Store
    registry: MlflowRegistry  # uncounted, to set up and to check against
    api: TestClient
    dashboard: ApiClient
    counts: Counts


@pytest.fixture
def overview(
    store: Store, make_settings: Callable[..., Settings], registry: MlflowRegistry
) -> Iterator[Overview]:
    # ``registry`` makes sure the session's MLflow store and experiment exist.
    settings = make_settings()
    counts = Counts()
    options: dict[str, Any] = {
        "signing_key": TEST_SIGNING_KEY.encode(),
        "model_prefix": settings.models.registered_model_prefix,
    }
    counted = CountedMlflowRegistry(registry.tracking_uri, mlflow_calls=counts.mlflow, **options)
    app = create_app(settings, store=store, registry=Counted(counted, counts.registry))  # type: ignore[arg-type]
    event.listen(
        store.database.engine,
        "before_cursor_execute",
        lambda *args: counts.statements.append(str(args[2])),
    )
    with TestClient(app) as api:
        dashboard = ApiClient("http://testserver", transport=forwarding(api, counts.requests))
        plain = MlflowRegistry(registry.tracking_uri, **options)
        yield Overview(store, plain, api, dashboard, counts)
        dashboard.close()


def add_machine(overview: Overview, k: int) -> None:
    """Machine ``m{k:03d}``: two scored batches (the second over its threshold for odd
    ``k``); a champion for k % 3 != 2 (v1, or v2 with v1 the challenger for k % 3 == 1)."""
    machine_id = f"m{k:03d}"
    rng = np.random.default_rng(k)
    for b in range(2):
        times = [T0 + timedelta(seconds=10 * b + s) for s in range(10)]
        batch = overview.store.readings.add(
            ReadingsBatch.of_rows(machine_id, COLUMNS, times, rng.normal(size=(10, 2)).tolist())
        )
        stored = overview.store.readings.get(batch.batch_id)
        scores = rng.random(10) + (b * (k % 2))
        contributions = rng.random((10, 2))
        overview.store.scores.add(
            ScoreRecord(stored, "model", 1, "champion", 1.0, scores, contributions, COLUMNS)
        )
    if k % 3 == 2:
        return
    name = overview.registry.model_name(machine_id)
    client = overview.registry.client
    client.create_registered_model(name)
    versions = [client.create_model_version(name, source=f"/nowhere/{name}/{v}") for v in (1, 2)]
    if k % 3 == 1:
        overview.registry.set_alias(machine_id, CHALLENGER, int(versions[0].version))
    overview.registry.set_alias(machine_id, CHAMPION, int(versions[k % 3].version))


def cost(overview: Overview) -> dict[str, int]:
    """What one ``GET /machines``, one ``GET /scores/latest`` and one refresh of the
    dashboard's overview each cost."""
    counts, api, out = overview.counts, overview.api, {}
    counts.clear()
    assert api.get(f"{API}/machines").status_code == 200
    out |= {"machines sql": len(counts.statements), "machines registry": len(counts.registry)}
    out["machines mlflow"] = len(counts.mlflow)
    counts.clear()
    assert api.get(f"{API}/scores/latest", params={"n": 5}).status_code == 200
    out |= {"latest sql": len(counts.statements), "latest registry": len(counts.registry)}
    counts.clear()
    _, warning = fetch_rows(overview.dashboard, datetime.now(UTC))
    assert warning is None
    out["overview requests"] = len(counts.requests)
    return out


def moved(overview: Overview, machine_id: str = "m000") -> None:
    """Record an alias move, as MMLW's lifecycle does with every move it makes."""
    overview.store.alias_history.record(
        machine_id, CHAMPION, 1, 2, at=datetime.now(UTC), actor="test", reason="test"
    )


def test_the_overview_costs_the_same_for_1_and_for_100_machines(overview: Overview) -> None:
    add_machine(overview, 0)
    overview.api.get(f"{API}/machines")  # the first request opens what later ones reuse
    moved(overview)  # so that the registry is searched again
    one = cost(overview)
    assert one["machines registry"] == 1 and one["machines mlflow"] == 1
    for k in range(1, 100):
        add_machine(overview, k)
    moved(overview)
    assert cost(overview) == one


def test_the_registry_is_searched_again_only_when_an_alias_moved(overview: Overview) -> None:
    add_machine(overview, 0)
    first = overview.api.get(f"{API}/machines").json()
    overview.counts.clear()
    for _ in range(3):  # nothing moved: the same answer, without a search
        assert overview.api.get(f"{API}/machines").json() == first
    assert overview.counts.registry == [] and overview.counts.mlflow == []
    # an alias moved by MMLW (recorded): shown at the next request, whichever process
    # moved it; a move left unrecorded (the MLflow UI) only once the answer is too old
    overview.registry.set_alias("m000", CHAMPION, 2)
    assert overview.api.get(f"{API}/machines").json()[0]["champion_version"] == 1
    moved(overview)
    assert overview.api.get(f"{API}/machines").json()[0]["champion_version"] == 2
    assert overview.counts.registry == ["alias_map"]


def test_with_no_max_age_every_request_searches(
    store: Store, make_settings: Callable[..., Settings], registry: MlflowRegistry
) -> None:
    settings = make_settings()
    settings = settings.model_copy(
        update={"api": settings.api.model_copy(update={"alias_max_age_s": 0.0})}
    )
    calls: list[str] = []
    app = create_app(settings, store=store, registry=Counted(registry, calls))  # type: ignore[arg-type]
    with TestClient(app) as api:
        for _ in range(3):
            assert api.get(f"{API}/machines").status_code == 200
    assert calls == []  # no machines: nothing to look up
    times = [T0 + timedelta(seconds=s) for s in range(3)]
    store.readings.add(ReadingsBatch.of_rows("m0", COLUMNS, times, [[0.0, 1.0]] * 3))
    with TestClient(app) as api:
        for _ in range(3):
            assert api.get(f"{API}/machines").status_code == 200
    assert calls == ["alias_map"] * 3


def test_machines_name_each_champion_as_the_registry_does(overview: Overview) -> None:
    for k in range(6):
        add_machine(overview, k)
    listed = overview.api.get(f"{API}/machines").json()
    assert [m["id"] for m in listed] == [f"m{k:03d}" for k in range(6)]
    expected = [overview.registry.alias_version(m["id"], CHAMPION) for m in listed]
    assert [m["champion_version"] for m in listed] == expected == [1, 2, None, 1, 2, None]
    for m in listed:
        assert overview.api.get(f"{API}/machines/{m['id']}").json() == m


def test_latest_scores_are_each_machines_newest_scores(overview: Overview) -> None:
    for k in range(4):
        add_machine(overview, k)
    for n in (1, 7, 10, 15, 300):
        latest = overview.api.get(f"{API}/scores/latest", params={"n": n})
        assert latest.status_code == 200, latest.text
        for one in latest.json():
            alone = overview.api.get(
                f"{API}/machines/{one['machine_id']}/scores", params={"limit": n, "top": 0}
            )
            assert one == alone.json()
        assert [one["machine_id"] for one in latest.json()] == [f"m{k:03d}" for k in range(4)]
    assert overview.api.get(f"{API}/scores/latest", params={"n": 0}).status_code == 422


def test_the_overview_rows_come_from_one_request_for_all_scores(overview: Overview) -> None:
    for k in range(4):
        add_machine(overview, k)
    overview.counts.clear()
    rows, _ = fetch_rows(overview.dashboard, T0)
    assert sorted(overview.counts.requests) == [
        f"GET {API}/alerts",
        f"GET {API}/machines",
        f"GET {API}/scores/latest",
    ]
    for row in rows:
        alone = overview.dashboard.scores(row.machine.id, limit=SPARKLINE_POINTS, top=0).item
        assert row.recent == alone
        idle = "no model" if row.machine.champion_version is None else "normal"
        assert row.status.value == ("anomalous" if alone.flags[-1] else idle)
