"""``X-Total-Count`` of the readings and scores endpoints: every reading in the requested
range, exact at the range's edges (which cut batches), whatever ``limit`` returns."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
from fastapi.testclient import TestClient

from mmlw.api.app import create_app
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.schemas.readings import ReadingsBatch
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.store.scores import ScoreRecord

API = "/api/v1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
BATCHES, SIZE = 10, 100


def _stored(store: Store) -> list[int]:
    """10 batches of 100 readings 1 s apart, plus one batch overlapping the first three
    in time (half a second later), all champion-scored; every reading's time (us)."""
    stamps: list[int] = []
    rng = np.random.default_rng(1)
    spans = [(b * SIZE, SIZE, 0.0) for b in range(BATCHES)] + [(0, 3 * SIZE, 0.5)]
    for first, n, offset in spans:
        times = [T0 + timedelta(seconds=first + i + offset) for i in range(n)]
        batch = ReadingsBatch.of_rows("m", ["a", "b"], times, rng.normal(size=(n, 2)).tolist())
        stored = store.readings.get(store.readings.add(batch).batch_id)
        store.scores.add(
            ScoreRecord(
                batch=stored, model_name="mmlw-m", model_version=1, role="champion",
                threshold=1.0, scores=rng.uniform(0, 2, n), contributions=np.ones((n, 2)),
                columns=["a", "b"],
            )
        )  # fmt: skip
        stamps.extend(int(t.timestamp() * 1_000_000) for t in times)
    return stamps


def _in(stamps: list[int], start: datetime | None, end: datetime | None) -> int:
    lo = -(2**62) if start is None else int(start.timestamp() * 1_000_000)
    hi = 2**62 if end is None else int(end.timestamp() * 1_000_000)
    return sum(lo <= s < hi for s in stamps)


RANGES = [
    (None, None),
    (T0 + timedelta(seconds=50), T0 + timedelta(seconds=850)),  # cuts batches
    (T0 + timedelta(seconds=150.5), None),  # on a reading of the overlapping batch
    (None, T0 + timedelta(seconds=200)),  # on a batch's first reading
    (T0 + timedelta(seconds=99), T0 + timedelta(seconds=100)),  # on a batch's last
    (T0 + timedelta(seconds=2000), None),  # nothing
]


def test_counts_in_range_are_exact_at_the_edges(store: Store) -> None:
    stamps = _stored(store)
    for start, end in RANGES:
        expected = _in(stamps, start, end)
        assert store.readings.count_in_range("m", start, end) == expected, (start, end)
        assert store.scores.count_in_range("m", start, end) == expected, (start, end)
    assert store.scores.count_in_range("m", role="challenger") == 0


def test_total_count_is_the_range_not_the_page(
    make_settings: Callable[..., Settings], store: Store, registry: MlflowRegistry
) -> None:
    stamps = _stored(store)
    with TestClient(create_app(make_settings(), store=store, registry=registry)) as client:
        for start, end in RANGES:
            params: dict[str, object] = {"limit": 50}
            if start is not None:
                params["start"] = start.isoformat()
            if end is not None:
                params["end"] = end.isoformat()
            expected = _in(stamps, start, end)
            for what, key in (("readings", "timestamps"), ("scores", "scores")):
                response = client.get(f"{API}/machines/m/{what}", params=params)
                assert response.status_code == 200, response.text
                assert len(response.json()[key]) == min(50, expected), (what, start, end)
                assert response.headers["X-Total-Count"] == str(expected), (what, start, end)
            downsampled = client.get(
                f"{API}/machines/m/readings", params={**params, "limit": 1000, "max_points": 10}
            )
            assert downsampled.headers["X-Total-Count"] == str(expected)
