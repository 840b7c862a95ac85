"""The examples in docstrings are tests: every module of ``mmlw`` with a ``>>>`` example
is found from the source tree (no list to keep current) and its examples run."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PORTIONS = (ROOT / "backend", ROOT / "workers", ROOT / "frontend")  # the mmlw namespace


def modules_with_examples() -> list[str]:
    names = []
    for portion in PORTIONS:
        for path in sorted((portion / "mmlw").rglob("*.py")):
            if "migrations" in path.parts or ">>> " not in path.read_text():
                continue
            parts = path.relative_to(portion).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = modules_with_examples()


def test_modules_with_examples_are_found() -> None:
    assert len(MODULES) >= 10, MODULES
    assert "mmlw.alerts.conditions" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, name
    if result.attempted == 0:  # only examples that cannot run here (a server, a network)
        assert "doctest: +SKIP" in Path(str(module.__file__)).read_text(), name
