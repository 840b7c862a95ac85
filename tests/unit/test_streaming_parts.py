"""The batches of one predict task are streamed as one part: each batch gets the scores
it gets when the machine's batches are streamed one by one, a batch that does not fit
the model's input schema is left out (and does not break the others' history), and
the carry handed on is the one streaming them one by one leaves."""

from __future__ import annotations

import numpy as np
import pytest

from backend.detectors.model import fit_model
from backend.services.streaming import _stream
from backend.store.readings import StoredBatch

COLUMNS = ["s0", "s1", "s2", "s3"]


def batch(i: int, values: np.ndarray, columns: list[str] = COLUMNS) -> StoredBatch:
    return StoredBatch(
        id=i,
        machine_id="m",
        message_id=f"x{i}",
        columns=columns,
        timestamps_us=np.arange(len(values)),
        values=values,
        labels=None,
    )


@pytest.mark.parametrize("name", ["pca", "isolation_forest", "level_change", "half_space_trees"])
def test_one_part_equals_batch_by_batch(name: str) -> None:
    rng = np.random.default_rng(0)
    model = fit_model(rng.normal(size=(500, 4)), COLUMNS, name, {}, 0.99).model
    sizes = (100, 1, 37, 100, 3)
    batches = [batch(i, rng.normal(size=(n, 4))) for i, n in enumerate(sizes)]
    batches.insert(2, batch(99, rng.normal(size=(5, 3)), COLUMNS[:3]))  # a sensor missing

    items, carry, n = _stream(model, batches, None, "ignore")
    assert n == sum(sizes)
    assert items[2].scored is None and items[2].mismatch is not None

    alone_carry = None
    for item, one in zip(items, batches, strict=True):
        if item.scored is None:
            continue
        want, alone_carry = model.stream(one.values, alone_carry)
        np.testing.assert_allclose(item.scored.scores, want.scores, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(item.scored.contributions, want.contributions, atol=1e-12)
        np.testing.assert_array_equal(item.scored.flags, want.flags)
    assert alone_carry is not None and set(carry) == set(alone_carry)
    for key in carry:
        np.testing.assert_allclose(carry[key], alone_carry[key], rtol=1e-9, atol=1e-12)
