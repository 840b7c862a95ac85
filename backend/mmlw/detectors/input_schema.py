"""A model version's input schema and the policy that fits a batch to it before scoring.

The schema is what the version was trained on: its sensor names in order, each a
``double``. The same list is the version's MLflow signature (see
:meth:`mmlw.registry.mlflow_registry.MlflowRegistry.register`). Policy:

- columns in another order are put in the schema's order by name (same scores);
- sensors the schema does not know are dropped (``extra="ignore"``, the default) or
  refused (``extra="reject"``);
- a missing sensor, a non-numeric or a NaN/inf value is refused: never imputed.

>>> schema = InputSchema(("a", "b"))
>>> conform(pd.DataFrame({"b": [2.0], "a": [1.0], "c": [9.0]}), schema).columns.tolist()
['a', 'b']
>>> conform(pd.DataFrame({"a": [1.0]}), schema)
Traceback (most recent call last):
...
mmlw.detectors.input_schema.SchemaMismatch: columns: missing sensors ['b']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mmlw.errors import InvalidMessage

__all__ = ["ExtraSensors", "InputSchema", "SchemaMismatch", "conform", "conform_matrix"]

ExtraSensors = Literal["ignore", "reject"]


class SchemaMismatch(InvalidMessage):
    """A batch that does not fit a model's input schema; ``missing``/``extra`` name the
    sensors."""

    def __init__(
        self, reason: str, *, missing: Sequence[str] = (), extra: Sequence[str] = ()
    ) -> None:
        super().__init__(reason)
        self.missing = list(missing)
        self.extra = list(extra)


@dataclass(frozen=True)
class InputSchema:
    """Sensor names in the order the model reads them; every one a ``double``."""

    columns: tuple[str, ...]
    dtype: str = "double"

    @classmethod
    def of(cls, columns: Sequence[str]) -> InputSchema:
        return cls(tuple(columns))


def conform(
    frame: pd.DataFrame, schema: InputSchema, extra: ExtraSensors = "ignore"
) -> pd.DataFrame:
    """``frame`` with exactly the schema's columns in its order, as float64, or
    :class:`SchemaMismatch` naming what does not fit."""
    present = [str(c) for c in frame.columns]
    _check_columns(present, schema, extra)
    selected = frame[list(schema.columns)]
    try:
        values = selected.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        bad = [c for c in schema.columns if not pd.api.types.is_numeric_dtype(selected[c])]
        raise SchemaMismatch(f"columns: non-numeric sensors {bad}") from None
    _check_finite(values, schema)
    return pd.DataFrame(values, index=frame.index, columns=list(schema.columns))


def conform_matrix(
    columns: Sequence[str], values: np.ndarray, schema: InputSchema, extra: ExtraSensors = "ignore"
) -> np.ndarray:
    """:func:`conform` for a float matrix with named ``columns`` (the predict path: no
    DataFrame): the schema's columns in its order, or :class:`SchemaMismatch`.

    >>> conform_matrix(["b", "a"], np.array([[2.0, 1.0]]), InputSchema(("a", "b"))).tolist()
    [[1.0, 2.0]]
    """
    present = [str(c) for c in columns]
    _check_columns(present, schema, extra)
    if present == list(schema.columns):
        matrix = np.asarray(values, dtype=np.float64)
    else:
        position = {c: i for i, c in enumerate(present)}
        matrix = np.asarray(values, dtype=np.float64)[:, [position[c] for c in schema.columns]]
    _check_finite(matrix, schema)
    return matrix


def _check_columns(present: list[str], schema: InputSchema, extra: ExtraSensors) -> None:
    known = set(schema.columns)
    missing = [c for c in schema.columns if c not in set(present)]
    unknown = [c for c in present if c not in known]
    if missing:
        raise SchemaMismatch(f"columns: missing sensors {missing}", missing=missing, extra=unknown)
    if unknown and extra == "reject":
        raise SchemaMismatch(f"columns: unknown sensors {unknown}", extra=unknown)


def _check_finite(values: np.ndarray, schema: InputSchema) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        bad = [c for c, ok in zip(schema.columns, finite.all(axis=0), strict=True) if not ok]
        raise SchemaMismatch(f"values: NaN or infinite readings of sensors {bad}")
