"""``mmlw --help`` stays fast: the CLI imports heavy libraries only inside the commands.

No wall-clock limits (the machine may be busy): a fresh interpreter checks which modules
building the command tree loads, and ``-X importtime`` compares ``mmlw.cli`` with the
interpreter's own start-up imports measured in the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HEAVY = ("mlflow", "sklearn", "pandas", "fastapi", "dash", "plotly", "celery", "sqlalchemy")
RATIO = 5.0  # mmlw.cli may cost at most this many times the interpreter's start-up imports
RUNS = 3  # the best of a few runs, so that a busy machine does not fail the test

PROBE = f"""
import mmlw.cli  # first, so that its cumulative time counts everything it loads

import json, sys
import click
from click.testing import CliRunner
from mmlw.cli import main


def walk(group, ctx):
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            walk(command, click.Context(command, info_name=name, parent=ctx))


walk(main, click.Context(main, info_name="mmlw"))
runner = CliRunner()
helps = [runner.invoke(main, ["--help"])]
helps += [runner.invoke(main, [name, "--help"]) for name in main.list_commands(None)]
heavy = sorted(
    m for m in sys.modules if m.split(".")[0] in {list(HEAVY)!r}
)
print(json.dumps({{"heavy": heavy, "codes": [r.exit_code for r in helps]}}))
"""


def _probe() -> tuple[dict[str, list[Any]], dict[str, int]]:
    """Run PROBE with ``-X importtime``: its JSON output and top-level cumulative times (us)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    cumulative: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumul, name = line.split("|")
        if not name.startswith("  "):  # one level below the root: imported by nobody else
            cumulative[name.strip()] = int(cumul)
    return json.loads(done.stdout.splitlines()[-1]), cumulative


def test_building_the_command_tree_loads_no_heavy_library() -> None:
    result, _ = _probe()
    assert result["heavy"] == [], f"mmlw --help imports {result['heavy']}"
    assert set(result["codes"]) == {0}


@pytest.mark.alone  # a ratio of import times: measured without other tests running
def test_importing_the_cli_costs_little_next_to_interpreter_start_up() -> None:
    ratios = []
    for _ in range(RUNS):
        _, cumulative = _probe()
        cli = cumulative["mmlw.cli"]
        startup = cumulative["site"] + cumulative.get("encodings", 0)
        ratios.append(cli / startup)
        if ratios[-1] < RATIO:
            return
    raise AssertionError(f"import mmlw.cli / start-up imports = {min(ratios):.1f} >= {RATIO}")


# --- commands that only read: `mmlw models M`, `mmlw jobs` ----------------------------

# a command's imports / start-up imports, measured on a busy 2-core machine: models ~2
# (mmlw.cli itself), jobs ~10-30 (SQLAlchemy and the store); with mlflow, sklearn, pandas
# and Alembic they were ~100 and ~40
MODELS_RATIO = 10.0
JOBS_RATIO = 25.0
NOT_FOR_READING = ("mlflow", "sklearn", "scipy", "pandas", "alembic", "celery", "fastapi")

COMMAND_PROBE = """
import json, sys
from click.testing import CliRunner
from mmlw.cli import main

result = CliRunner().invoke(main, sys.argv[1:])
loaded = sorted({m.split(".")[0] for m in sys.modules})
print(json.dumps({"code": result.exit_code, "output": result.output, "loaded": loaded}))
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose database `mmlw db upgrade` migrated; no MLflow store yet."""
    path = tmp_path_factory.mktemp("data")
    subprocess.run(
        [sys.executable, "-m", "mmlw.cli", "db", "upgrade"],
        env={**_clean_env(), "MMLW_DATA_DIR": str(path)},
        capture_output=True,
        timeout=300,
        check=True,
    )
    return path


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MMLW_")}


def _command_probe(data_dir: Path, *args: str) -> tuple[dict[str, Any], float]:
    """Run one command in a fresh interpreter with ``-X importtime``: its result and the
    ratio of everything imported to the interpreter's start-up imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", COMMAND_PROBE, *args],
        env={**_clean_env(), "MMLW_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    top: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            _, cumul, name = line.split("|")
            if not name.startswith("  "):
                top[name.strip()] = top.get(name.strip(), 0) + int(cumul)
    startup = top.pop("site") + top.pop("encodings", 0)
    return json.loads(done.stdout.splitlines()[-1]), sum(top.values()) / startup


@pytest.mark.parametrize(
    ("args", "expected"),
    [(("models", "pump-1"), "no registered model"), (("jobs",), "")],
    ids=["models", "jobs"],
)
def test_reading_commands_import_no_heavy_library(
    data_dir: Path, args: tuple[str, ...], expected: str
) -> None:
    """`mmlw models M` reads the SQLite MLflow store without mlflow; `mmlw jobs` and the
    schema revision check need neither pandas nor Alembic."""
    result, _ = _command_probe(data_dir, *args)
    assert expected in result["output"]
    assert result["code"] == (1 if expected else 0), result["output"]
    heavy = [m for m in result["loaded"] if m in NOT_FOR_READING]
    assert heavy == [], f"mmlw {' '.join(args)} imports {heavy}"


@pytest.mark.alone  # a ratio of import times: measured without other tests running
@pytest.mark.parametrize(
    ("args", "limit"),
    [(("models", "pump-1"), MODELS_RATIO), (("jobs",), JOBS_RATIO)],
    ids=["models", "jobs"],
)
def test_reading_commands_cost_little_next_to_interpreter_start_up(
    data_dir: Path, args: tuple[str, ...], limit: float
) -> None:
    ratios = []
    for _ in range(RUNS):
        ratios.append(_command_probe(data_dir, *args)[1])
        if ratios[-1] < limit:
            return
    raise AssertionError(
        f"mmlw {' '.join(args)}: imports / start-up imports = {min(ratios):.1f} >= {limit}"
    )


#: what a process that never fits or scores may not load (scikit-learn brings SciPy)
NOT_FOR_SERVING = ("sklearn", "scipy", "mlflow")


@pytest.mark.parametrize(
    "module", ["mmlw.api.app", "mmlw.workers.consumers.ingest", "mmlw.workers.context"]
)
def test_the_api_and_ingest_start_without_scikit_learn(module: str) -> None:
    """`mmlw api` and `mmlw ingest` neither fit nor score: they start without scikit-learn
    (a train request loads the detector catalog when it comes; a scorer loads the model
    cache when it scores)."""
    probe = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = {m.split(".")[0] for m in json.loads(done.stdout.splitlines()[-1])}
    assert sorted(loaded & set(NOT_FOR_SERVING)) == [], f"{module} imports them"
