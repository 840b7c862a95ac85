"""The layer contract (``.importlinter``): the code keeps it, and it catches a break.

``lint-imports`` runs in ``.ci/run`` too; here it also runs on a copy of the package with
one deliberate upward import, which must fail, so the contract cannot pass vacuously.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("backend", "workers", "frontend")


def lint_imports(cwd: Path, pythonpath: list[Path]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath)}
    return subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_code_keeps_its_layers() -> None:
    result = lint_imports(ROOT, [ROOT / folder for folder in FOLDERS])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    for folder in FOLDERS:
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    violation = tmp_path / "backend" / "mmlw" / "store" / "_violation.py"
    violation.write_text("from mmlw.api import app  # the store reaching up into the API\n")
    result = lint_imports(tmp_path, [tmp_path / folder for folder in FOLDERS])
    assert result.returncode != 0, result.stdout
    assert "mmlw.store is not allowed to import mmlw.api" in result.stdout
    assert "mmlw.store._violation -> mmlw.api" in result.stdout
