"""The examples in module docstrings are tests: run those no other test module runs."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "backend.alerts.conditions",
    "backend.bench.scenarios",
    "backend.detectors._online",
    "backend.detectors.cross_sensor",
    "backend.detectors.seasonality",
    "workers.demo_alerts",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0, name
