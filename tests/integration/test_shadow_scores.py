"""Shadow scores in the API on a real pipeline (RabbitMQ, Celery worker, MLflow): the
challenger's own scores (``role=challenger``) and the champion-vs-challenger comparison,
checked against what the store holds, through the HTTP API and the Python client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mmlw.client import Client, NotFound
from mmlw.messaging.pika_publisher import PikaReadingsPublisher
from mmlw.settings import Settings
from mmlw.workers.simulator import SyntheticMachine
from tests.integration.pipeline import (
    Pipeline,
    pipeline_stack,
    wait_for,
)
from tests.integration.test_lifecycle import lifecycle_settings, publish, scored, train
from tests.integration.test_machines_queries import forwarding

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]
API = "/api/v1"
MACHINE = "shadow-1"


@pytest.fixture
def stack(
    make_settings: Callable[..., Settings], rabbitmq_url: str
) -> Iterator[tuple[Pipeline, PikaReadingsPublisher, TestClient]]:
    settings = lifecycle_settings(make_settings, rabbitmq_url)
    with pipeline_stack(settings, rabbitmq_url) as stack:
        yield stack


def by_time(body: dict[str, Any], key: str) -> dict[datetime, float]:
    """A scores response's ``key`` series by reading time."""
    stamps = [datetime.fromisoformat(t) for t in body["timestamps"]]
    return dict(zip(stamps, body[key], strict=True))


def test_compare_endpoint_matches_the_store_and_each_roles_scores(
    stack: tuple[Pipeline, PikaReadingsPublisher, TestClient],
) -> None:
    pipeline, pub, api = stack
    store = pipeline.store
    machine = SyntheticMachine(MACHINE, seed=21, fault_every=90, fault_length=15)
    publish(pub, machine, 400)
    wait_for(lambda: store.machines.get(MACHINE).n_readings == 400, what="readings")
    train(pipeline, MACHINE, detector="pca")
    wait_for(lambda: scored(store, MACHINE) == 400, what="backfill")

    # no challenger yet: empty, saying why; the challenger's scores are empty too
    none = api.get(f"{API}/machines/{MACHINE}/scores/compare")
    assert none.status_code == 200, none.text
    assert none.json()["reason"] == f"machine {MACHINE!r} has no challenger"
    assert none.json()["summary"]["n_compared"] == 0 and none.json()["challenger_version"] is None
    assert (
        api.get(f"{API}/machines/{MACHINE}/scores", params={"role": "challenger"}).json()["scores"]
        == []
    )
    assert api.get(f"{API}/machines/nobody/scores/compare").status_code == 404
    bad = api.get(f"{API}/machines/{MACHINE}/scores", params={"role": "shadow"})
    assert bad.status_code == 422

    # a more sensitive v2 becomes challenger and scores the next batches in shadow
    v2 = train(pipeline, MACHINE, detector="pca", threshold_quantile=0.9)
    assert v2["aliases"] == ["challenger"]
    pipeline.context.models.invalidate(MACHINE)  # "no challenger" was cached: ask again
    publish(pub, machine, 300)
    wait_for(lambda: scored(store, MACHINE, "challenger") >= 300, what="shadow scores")
    wait_for(lambda: scored(store, MACHINE) == 700, what="champion scores")

    body = api.get(f"{API}/machines/{MACHINE}/scores/compare").json()
    assert (body["champion_version"], body["challenger_version"], body["reason"]) == (1, 2, None)
    champ_flags, chal_flags = store.scores.paired_flags(MACHINE, 1, 2)  # the gate's own read
    summary = body["summary"]
    assert summary["n_compared"] == len(champ_flags) >= 300
    assert summary["champion_flagged"] == int(champ_flags.sum())
    assert summary["challenger_flagged"] == int(chal_flags.sum())
    assert summary["disagreements"] == int((champ_flags != chal_flags).sum())
    assert summary["challenger_flagged"] > summary["champion_flagged"]  # the lower threshold
    assert summary["disagreements"] > 0

    # the two series are each role's own scores, on the same readings
    champion = api.get(f"{API}/machines/{MACHINE}/scores", params={"top": 0}).json()
    challenger = api.get(
        f"{API}/machines/{MACHINE}/scores", params={"top": 0, "role": "challenger"}
    ).json()
    assert set(challenger["model_versions"]) == {2}
    assert len(challenger["scores"]) == scored(store, MACHINE, "challenger")
    champ_at, chal_at = by_time(champion, "scores"), by_time(challenger, "scores")
    stamps = [datetime.fromisoformat(t) for t in body["timestamps"]]
    assert stamps == sorted(stamps)
    assert body["champion_scores"] == [champ_at[t] for t in stamps]
    assert body["challenger_scores"] == [chal_at[t] for t in stamps]
    assert summary["champion_mean"] == pytest.approx(np.mean(body["champion_scores"]))
    assert summary["challenger_mean"] == pytest.approx(np.mean(body["challenger_scores"]))
    expected = np.corrcoef(body["champion_scores"], body["challenger_scores"])[0, 1]
    assert summary["correlation"] == pytest.approx(expected)
    assert body["challenger_flags"] == [
        s > t for s, t in zip(body["challenger_scores"], body["challenger_thresholds"], strict=True)
    ]

    # bounded like the other range reads: start/end, limit and max_points
    middle = body["timestamps"][len(stamps) // 2]
    later = api.get(f"{API}/machines/{MACHINE}/scores/compare", params={"start": middle}).json()
    assert later["timestamps"] == body["timestamps"][len(stamps) // 2 :]
    newest = api.get(f"{API}/machines/{MACHINE}/scores/compare", params={"limit": 50}).json()
    assert newest["timestamps"] == body["timestamps"][-50:]
    assert newest["summary"]["n_compared"] == 50
    drawn = api.get(f"{API}/machines/{MACHINE}/scores/compare", params={"max_points": 20}).json()
    assert 0 < len(drawn["timestamps"]) <= 20
    assert drawn["summary"] == summary  # over every reading, not the drawn ones
    too_many = api.get(
        f"{API}/machines/{MACHINE}/scores/compare",
        params={"limit": pipeline.settings.api.max_rows + 1},
    )
    assert too_many.status_code == 422

    # the Python client reads the same
    with Client("http://testserver", transport=forwarding(api, [])) as client:
        compared = client.scores.compare(MACHINE, limit=50)
        assert compared.model_dump(mode="json") == newest
        shadow = client.scores.get(MACHINE, role="challenger", top=0)
        assert shadow.scores == challenger["scores"]
        with pytest.raises(NotFound):
            client.scores.compare("nobody")

    # shadow never alerts on its own: every alert names the champion's version
    assert {a.model_version for a in store.alerts.list()} <= {1}
