"""One call behind ``mmlw evaluate``: load, run every detector/recipe, write, log.

Guarantees: the dataset is loaded once; every run uses a fresh detector per file; outputs
are written before anything is logged to MLflow; unknown detectors, recipes or parameters
raise ValueError before any work starts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from mmlw.evaluation.datasets import Dataset, load_dataset
from mmlw.evaluation.protocol import DetectorResult, ProtocolConfig, run_protocol
from mmlw.evaluation.recipes import RECIPES

__all__ = ["Run", "plan_runs", "run_evaluation"]


@dataclass(frozen=True)
class Run:
    """One benchmark row to compute: a label, a catalog detector, params and a config."""

    label: str
    detector: str
    params: Mapping[str, Any]
    config: ProtocolConfig


def plan_runs(
    detectors: Sequence[str],
    recipes: Sequence[str],
    params: Mapping[str, Any],
    config: ProtocolConfig,
) -> list[Run]:
    """Runs for the named detectors (all of the catalog if none and no recipe) and recipes.

    ``params`` go to every detector that accepts them; a param no selected detector
    accepts is an error. Recipes keep their own params and config.
    """
    from mmlw.detectors.catalog import DETECTORS, build_detector

    unknown = sorted(set(recipes) - set(RECIPES))
    if unknown:
        raise ValueError(f"recipe: unknown {unknown}; choose from {sorted(RECIPES)}")
    names = list(detectors) or ([] if recipes else sorted(DETECTORS))
    runs = []
    used: set[str] = set()
    for name in dict.fromkeys(names):
        if name not in DETECTORS:
            raise ValueError(f"detector: unknown {name!r}; choose from {sorted(DETECTORS)}")
        accepted = DETECTORS[name]().get_params()
        mine = {k: v for k, v in params.items() if k in accepted}
        used.update(mine)
        build_detector(name, mine)
        runs.append(Run(label=name, detector=name, params=mine, config=config))
    unused = sorted(set(params) - used)
    if unused:
        raise ValueError(f"param: {unused} not accepted by any of {names}")
    for name in dict.fromkeys(recipes):
        r = RECIPES[name]
        runs.append(Run(label=name, detector=r.detector, params=dict(r.params), config=r.config))
    return runs


def run_evaluation(
    dataset: Path | str | Dataset,
    runs: Sequence[Run],
    out: Path,
    *,
    on_file: Callable[[], None] | None = None,
) -> tuple[list[DetectorResult], pd.DataFrame]:
    """Run each plan row over the dataset and write outputs under ``out``."""
    from mmlw.evaluation.report import write_all

    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    results = [
        run_protocol(
            data.files,
            run.detector,
            run.params,
            run.config,
            label=run.label,
            on_file=(lambda _f: on_file()) if on_file else None,
        )
        for run in runs
    ]
    table = write_all(results, out, published=data.is_skab)
    return results, table


def with_quantile(config: ProtocolConfig, quantile: float | None) -> ProtocolConfig:
    """``config`` with another threshold quantile (unchanged if None)."""
    return config if quantile is None else replace(config, threshold_quantile=quantile)


def log_runs(
    tracking_uri: str,
    experiment: str,
    results: Sequence[DetectorResult],
    dataset: Dataset,
    out: Path,
    artifact_root: Path | None = None,
) -> list[str]:
    """A parent run holding the dataset, the metrics table and the HTML report, and one
    child run per result with its params, metrics and predictions; returns
    ``[parent id, child ids...]``."""
    from mmlw.registry.evaluation_runs import log_evaluation

    dataset_params: dict[str, Any] = {
        "dataset": str(dataset.root),
        "dataset.layout": dataset.layout,
        "dataset.files": len(dataset.files),
    }
    parent = log_evaluation(
        tracking_uri,
        experiment,
        f"evaluation of {dataset.root.name}",
        {**dataset_params, "detectors": ",".join(r.label for r in results)},
        {},
        out,
        [out / "metrics.csv", out / "metrics.md", out / "report.html"],
        artifact_root=artifact_root,
    )
    ids = [parent]
    for r in results:
        params: dict[str, Any] = {
            **dataset_params,
            "detector.name": r.detector,
            **{f"detector.{k}": v for k, v in r.params.items()},
            **r.config.as_params(),
        }
        ids.append(
            log_evaluation(
                tracking_uri,
                experiment,
                r.label,
                params,
                r.metrics(),
                out,
                sorted((out / "predictions" / r.label).rglob("*.csv")),
                artifact_root=artifact_root,
                parent_run_id=parent,
            )
        )
    return ids
