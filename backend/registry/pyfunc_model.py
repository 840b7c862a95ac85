"""The MLflow pyfunc wrapper around an :class:`AnomalyModel` (imports mlflow: load lazily).

``mlflow models serve`` and ``mlflow.pyfunc.load_model`` both use it: ``predict`` takes
a DataFrame of sensors and returns ``score`` and ``anomaly`` columns. The class lives in
an importable module so the logged model pickles it by reference, not by value.
"""

from __future__ import annotations

import warnings

import mlflow.pyfunc
import pandas as pd

from backend.detectors.model import AnomalyModel

__all__ = ["AnomalyPyfunc"]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)

    class AnomalyPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc, name-defined]
        def __init__(self, model: AnomalyModel) -> None:
            self.model = model

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            # untyped on purpose: MLflow would read type hints as an input schema
            scored = self.model.score(pd.DataFrame(model_input))
            return pd.DataFrame({"score": scored.scores, "anomaly": scored.flags})
