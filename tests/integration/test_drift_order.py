"""Drift detection when predict tasks finish out of order: the change is placed by the
stored scores in time order, not by the order the online test happened to see them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from mmlw.detectors.catalog import build_detector
from mmlw.detectors.model import AnomalyModel
from mmlw.schemas import ReadingsBatch
from mmlw.services.drift import observe
from mmlw.services.scoring import LoadedModel
from mmlw.settings import DriftSettings
from mmlw.store import ScoreRecord, Store
from tests.integration.dispatchers import Jobs


def test_a_late_normal_batch_does_not_move_the_change_point(sqlite_store: Store) -> None:
    rng = np.random.default_rng(0)
    columns = ["a", "b"]
    detector = build_detector("pca").fit(rng.normal(size=(200, 2)))
    champion = LoadedModel("m-model", 1, AnomalyModel(detector, 1.0, columns, "pca"))
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    shift_at = 40  # batches 0-39 normal (score 0.3 x threshold), 40-59 shifted (5 x)
    stored = []
    for k in range(60):
        times = [t0 + timedelta(seconds=10 * k + i) for i in range(10)]
        batch = ReadingsBatch.of_rows("m", columns, times, rng.normal(size=(10, 2)).tolist())
        saved = sqlite_store.readings.get(sqlite_store.readings.add(batch).batch_id)
        level = 5.0 if k >= shift_at else 0.3
        scores = level * np.exp(rng.normal(0, 0.05, 10))
        sqlite_store.scores.add(
            ScoreRecord(saved, "m-model", 1, "champion", 1.0, scores, np.c_[scores, 0 * scores],
                        columns)
        )  # fmt: skip
        stored.append((saved, scores))
    # two workers: the shifted batches 40-49 are observed before the normal 30-39
    order = [*range(30), *range(40, 50), *range(30, 40), *range(50, 60)]
    settings = DriftSettings(
        delta=0.5, threshold=30.0, min_readings=50, train_readings=50, min_regime_s=0
    )
    jobs = Jobs()
    for k in order:
        batch, scores = stored[k]
        observe("m", champion, batch.timestamps_us, scores, store=sqlite_store,
                dispatcher=jobs, settings=settings)  # fmt: skip
    record = sqlite_store.drift.get("m")
    assert record is not None and record.change_at is not None
    # just after the last normal reading, not before the late normal batches
    last_normal = t0 + timedelta(seconds=10 * shift_at - 1)
    assert record.change_at == last_normal + timedelta(microseconds=1)
    assert len(jobs.trained) == 1
