"""The batches of one predict task are streamed as one part: each batch gets the scores
it gets when the machine's batches are streamed one by one, a batch that does not fit
the model's input schema is left out (and does not break the others' history), and
the carry handed on is the one streaming them one by one leaves."""

from __future__ import annotations

import numpy as np
import pytest

from mmlw.detectors.model import fit_model
from mmlw.services.streaming import _stream
from mmlw.store.readings import StoredBatch

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


def test_a_carry_round_trips_as_numbers_and_old_checkpoints_still_load() -> None:
    import io

    from mmlw.store.streams import CARRY_MAGIC, load_carry, save_carry

    X = np.random.default_rng(0).normal(size=(600, 3))
    model = fit_model(X[:400], ["a", "b", "c"], "adaptive", {}, 0.995).model
    _, carry = model.stream(X[400:500], None)
    data = save_carry(carry)
    assert data.startswith(CARRY_MAGIC)
    loaded = load_carry(data)
    assert sorted(loaded) == sorted(carry)
    for name, value in carry.items():
        assert loaded[name].shape == np.shape(value) and np.array_equal(loaded[name], value)
    # serving goes on from the stored carry exactly as from the one in memory
    np.testing.assert_array_equal(
        model.stream(X[500:], loaded)[0].scores, model.stream(X[500:], carry)[0].scores
    )
    old = io.BytesIO()
    np.savez(old, **{k: np.asarray(v) for k, v in carry.items()})  # checkpoints before
    assert all(np.array_equal(load_carry(old.getvalue())[k], v) for k, v in carry.items())
    for bad in (data[:-1], data + b"\0"):
        with pytest.raises(ValueError, match="carry"):
            load_carry(bad)
    with pytest.raises(ValueError, match="numbers only"):
        save_carry({"x": np.array(["text"])})
