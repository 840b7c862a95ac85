"""Batches of one model are scored in one call when its detector is row-wise, and give
the scores they get one by one; detectors over trailing windows are scored per batch."""

from __future__ import annotations

import numpy as np
import pytest

from backend.detectors.catalog import build_detector
from backend.detectors.model import AnomalyModel
from backend.services.scoring import LoadedModel, _Job, _score_jobs
from backend.store.readings import StoredBatch


def model(name: str, X: np.ndarray) -> LoadedModel:
    detector = build_detector(name).fit(X)
    columns = [f"s{i}" for i in range(X.shape[1])]
    return LoadedModel(f"m-{name}", 1, AnomalyModel(detector, 1.0, columns, name))


def job(loaded: LoadedModel, values: np.ndarray, role: str = "champion") -> _Job:
    batch = StoredBatch(
        id=0,
        machine_id="m",
        message_id="x",
        columns=loaded.model.columns,
        timestamps_us=np.arange(len(values)),
        values=values,
        labels=None,
    )
    return _Job(batch, values, loaded, role)


@pytest.mark.parametrize(
    ("name", "rowwise"), [("pca", True), ("isolation_forest", True), ("level_change", False)]
)
def test_stacked_scoring_equals_scoring_each_batch(name: str, rowwise: bool) -> None:
    rng = np.random.default_rng(0)
    loaded = model(name, rng.normal(size=(500, 4)))
    other = model("pca", rng.normal(size=(500, 4)))
    batches = [rng.normal(size=(n, 4)) for n in (100, 1, 37, 100)]
    jobs = [job(loaded, b) for b in batches] + [job(other, batches[0], "challenger")]
    assert loaded.model.rowwise is rowwise
    together = _score_jobs(jobs)
    alone = [j.loaded.model.score_matrix(j.values) for j in jobs]
    assert len(together) == len(jobs)
    for got, want in zip(together, alone, strict=True):
        assert got.scores.shape == want.scores.shape
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got.contributions, want.contributions, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(got.flags, want.flags)
        assert got.columns == want.columns
