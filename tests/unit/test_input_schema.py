"""The input-schema policy: reorder by name, drop (or refuse) extra sensors, refuse
missing sensors, non-numeric values and NaN."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmlw.detectors.input_schema import InputSchema, SchemaMismatch, conform

SCHEMA = InputSchema(("a", "b", "c"))


def frame(**columns: list[object]) -> pd.DataFrame:
    return pd.DataFrame(columns, index=pd.date_range("2026-01-01", periods=2, tz="UTC"))


def test_reordered_columns_are_put_in_schema_order() -> None:
    shuffled = frame(c=[3.0, 6.0], a=[1.0, 4.0], b=[2.0, 5.0])
    fitted = conform(shuffled, SCHEMA)
    assert list(fitted.columns) == ["a", "b", "c"]
    assert np.array_equal(fitted.to_numpy(), [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert fitted.index.equals(shuffled.index)


def test_extra_sensors_are_dropped_or_refused_by_policy() -> None:
    wide = frame(a=[1.0, 1.0], b=[2.0, 2.0], c=[3.0, 3.0], d=[9.0, 9.0])
    assert list(conform(wide, SCHEMA).columns) == ["a", "b", "c"]
    with pytest.raises(SchemaMismatch, match=r"unknown sensors \['d'\]") as refused:
        conform(wide, SCHEMA, extra="reject")
    assert refused.value.extra == ["d"] and refused.value.missing == []


def test_missing_sensors_are_refused_and_named() -> None:
    with pytest.raises(SchemaMismatch, match=r"missing sensors \['b', 'c'\]") as missing:
        conform(frame(a=[1.0, 2.0], z=[0.0, 0.0]), SCHEMA)
    assert missing.value.missing == ["b", "c"] and missing.value.extra == ["z"]


def test_nan_and_non_numeric_values_are_refused_never_imputed() -> None:
    with pytest.raises(SchemaMismatch, match=r"NaN or infinite readings of sensors \['b'\]"):
        conform(frame(a=[1.0, 2.0], b=[np.nan, 1.0], c=[1.0, 1.0]), SCHEMA)
    with pytest.raises(SchemaMismatch, match=r"non-numeric sensors \['c'\]"):
        conform(frame(a=[1.0, 2.0], b=[1.0, 1.0], c=["x", "y"]), SCHEMA)


def test_integer_columns_are_read_as_doubles() -> None:
    fitted = conform(frame(a=[1, 2], b=[3, 4], c=[5, 6]), SCHEMA)
    assert fitted.dtypes.unique().tolist() == [np.dtype("float64")]
