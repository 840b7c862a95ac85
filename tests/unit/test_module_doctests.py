"""The examples in module docstrings are tests: run those no other test module runs."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "mmlw.alerts.conditions",
    "mmlw.bench.scenarios",
    "mmlw.detectors._online",
    "mmlw.detectors.cross_sensor",
    "mmlw.detectors.seasonality",
    "mmlw.workers.demo_alerts",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0, name
