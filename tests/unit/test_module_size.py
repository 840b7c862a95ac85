"""No module of the product over 400 lines (tests and migrations aside): a module that
grows past it is doing more than one thing, and is split by concern."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 400


def test_no_module_is_over_400_lines() -> None:
    sources = [
        path
        for top in ("backend", "workers", "frontend")
        for path in (ROOT / top).rglob("*.py")
        if "migrations" not in path.parts
    ]
    assert len(sources) > 100
    long = {
        str(path.relative_to(ROOT)): n
        for path in sources
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > LIMIT
    }
    assert not long, long
