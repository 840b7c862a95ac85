"""Planning a tuning: grid expansion, random search, validation messages, feature reuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from mmlw.detectors.features import temporal_features
from mmlw.schemas.tuning import TuneOptions
from mmlw.services.tuning_plan import (
    FeatureCache,
    FeatureStep,
    TuneConfig,
    grid_from_file,
    plan_configs,
    split_config,
)


def options(**fields: object) -> TuneOptions:
    return TuneOptions.model_validate(fields)


def test_a_grid_is_every_combination_of_each_detectors_lists() -> None:
    planned = plan_configs(
        options(
            grid={
                "pca": {"n_components": [0.9, 0.99]},
                "pca_temporal": {"base": ["pca", "robust_zscore"], "windows": [5, [5, 20]]},
                "robust_zscore": {},
            }
        )
    )
    assert [c.label for c in planned] == [
        "pca(n_components=0.9)",
        "pca(n_components=0.99)",
        "pca_temporal(base=pca,windows=[5])",
        "pca_temporal(base=pca,windows=[5, 20])",
        "pca_temporal(base=robust_zscore,windows=[5])",
        "pca_temporal(base=robust_zscore,windows=[5, 20])",
        "robust_zscore",
    ]
    # a scalar window is one window: the params are what a train job can take as they are
    assert planned[2].params == {"base": "pca", "windows": [5]}


def test_random_search_draws_the_same_configs_for_the_same_seed() -> None:
    grid = {"pca": {"n_components": [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]}}
    first = plan_configs(options(grid=grid, search="random", samples=3, seed=7))
    again = plan_configs(options(grid=grid, search="random", samples=3, seed=7))
    other = plan_configs(options(grid=grid, search="random", samples=3, seed=8))
    assert len(first) == 3 and first == again
    assert [c.label for c in first] != [c.label for c in other]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"nope": {}}, "grid.nope: unknown detector; choose from"),
        ({"pca": {"n_comp": [1]}}, "grid.pca.n_comp: not a parameter of 'pca'; known:"),
        ({"pca": {"n_components": []}}, "grid.pca.n_components: needs at least one value"),
        ({"pca_temporal": {"windows": [1]}}, "grid.pca_temporal.windows: every value must be >= 2"),
        ({"pca_temporal": {"lags": ["x"]}}, "grid.pca_temporal.lags: expected an integer"),
        ({"pca_temporal": {"base": ["pca_temporal"]}}, "grid.pca_temporal.base: expected a"),
        ({"pca_temporal": {"base": ["nope"]}}, "grid.pca_temporal: detector: unknown 'nope'"),
    ],
)
def test_a_bad_grid_is_one_line_naming_the_field(grid: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        plan_configs(options(grid=grid))
    assert str(raised.value).startswith(message), raised.value
    assert "\n" not in str(raised.value)


def test_a_grid_too_large_is_refused_before_any_work() -> None:
    grid = {"pca": {"n_components": list(range(1, 30)), "eps": [1e-9 * i for i in range(1, 30)]}}
    with pytest.raises(ValueError, match=r"grid: 841 configurations, at most 500 for 'grid'"):
        plan_configs(options(grid=grid))


def test_options_refuse_samples_without_random_search() -> None:
    with pytest.raises(ValidationError, match="samples: only for search 'random'"):
        options(grid={"pca": {}}, samples=3)


def test_grid_files_are_yaml_or_json_with_or_without_the_grid_key() -> None:
    assert grid_from_file("pca: {n_components: 0.9}\nlof:\n", "g.yaml") == {
        "grid": {"pca": {"n_components": [0.9]}, "lof": {}}
    }
    text = '{"grid": {"pca": {"n_components": [0.9]}}, "search": "random", "samples": 1}'
    assert grid_from_file(text, "g.json")["samples"] == 1
    with pytest.raises(ValueError, match=r"^g.yaml: expected a mapping"):
        grid_from_file("- pca", "g.yaml")
    with pytest.raises(ValueError, match=r"^grid.pca: expected a mapping"):
        grid_from_file("pca: [1, 2]", "g.yaml")


def test_the_feature_cache_computes_each_feature_step_once() -> None:
    X = np.random.default_rng(0).normal(size=(200, 3))
    cache = FeatureCache(X)
    configs = [
        TuneConfig("a", "pca_temporal", {"base": "pca", "windows": [5]}),
        TuneConfig("b", "pca_temporal", {"base": "robust_zscore", "windows": [5]}),
        TuneConfig("c", "pca_temporal", {"base": "pca", "windows": [20]}),
        TuneConfig("d", "pca", {"n_components": 0.9}),
        TuneConfig("e", "lof", {}),
    ]
    frames = [cache.frame(split_config(c)[0]) for c in configs]
    assert (cache.requested, cache.computed) == (5, 3)
    assert frames[0] is frames[1] and frames[3] is frames[4] is X
    expected, _ = temporal_features(X, (1,), (20,), True)
    np.testing.assert_array_equal(frames[2], expected)
    assert split_config(configs[2])[0] == FeatureStep(lags=(1,), windows=(20,), diffs=True)


def test_the_example_grid_in_configs_plans_twelve_configs() -> None:
    path = Path(__file__).resolve().parents[2] / "configs" / "tuning.example.yaml"
    planned = plan_configs(TuneOptions.model_validate(grid_from_file(path.read_text(), "x")))
    assert len(planned) == 12
