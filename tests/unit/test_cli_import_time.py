"""``mmlw --help`` stays fast: the CLI imports heavy libraries only inside the commands.

No wall-clock limits (the machine may be busy): a fresh interpreter checks which modules
building the command tree loads, and ``-X importtime`` compares ``mmlw.cli`` with the
interpreter's own start-up imports measured in the same run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

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
