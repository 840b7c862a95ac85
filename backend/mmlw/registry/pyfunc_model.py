"""The MLflow pyfunc wrapper around an :class:`AnomalyModel` (imports mlflow: load lazily).

``mlflow models serve`` uses it: ``predict`` takes a DataFrame of sensors and returns
``score`` and ``anomaly`` columns. The class lives in an importable module so the logged
model pickles it by reference, not by value; the model itself is the logged artifact
``mmlw_model``, read in :meth:`load_context`. MMLW's workers never load this wrapper:
they read and verify the signed artifact themselves (:mod:`.mlflow_registry`).
"""

from __future__ import annotations

import pickle
import warnings

import mlflow.pyfunc
import pandas as pd

from mmlw.detectors.model import AnomalyModel

__all__ = ["AnomalyPyfunc"]

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)

    class AnomalyPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc, name-defined]
        def __init__(self, model: AnomalyModel | None = None) -> None:
            self.model = model

        def load_context(self, context):  # type: ignore[no-untyped-def]
            if self.model is None:
                with open(context.artifacts["mmlw_model"], "rb") as artifact:
                    self.model = pickle.load(artifact)

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            # untyped on purpose: MLflow would read type hints as an input schema
            assert self.model is not None
            scored = self.model.score(pd.DataFrame(model_input))
            return pd.DataFrame({"score": scored.scores, "anomaly": scored.flags})
