"""The manual's shell commands run as written: ``docs/check_commands.py --fast`` on each
of README.md and docs/*.md (all but the multi-minute runs) against the local RabbitMQ and
PostgreSQL, in a scratch clone; any command that fails fails the test with its output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_service

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docs" / "check_commands.py"

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.postgres]


def _check(*args: str, timeout: float) -> tuple[int, str]:
    """Run the script; past ``timeout`` it is sent SIGTERM, which stops its servers and
    removes what it made on the shared services before it exits."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        output, _ = process.communicate(timeout=180)
        output += f"\n(stopped after {timeout:.0f} s)"
        return -1, output
    return process.returncode, output


def test_every_shell_block_is_classified() -> None:
    """``--list`` runs nothing: each command is run, served or skipped with a reason, and
    the known skips are there (Docker, the test suite itself)."""
    code, listed = _check("--list", timeout=120)
    assert code == 0, listed
    lines = [line for line in listed.splitlines() if line and not line.startswith(" ")]
    kinds = {line.split()[0] for line in lines[:-1]}
    assert kinds <= {"run", "server", "skipped"}, kinds
    assert any(line.startswith("server  README.md:") and "mmlw demo" in line for line in lines)
    assert "(needs Docker)" in listed
    assert "(the test suite itself)" in listed


def test_servers_started_in_a_row_are_probed_together_and_each_failure_counts(
    tmp_path: Path,
) -> None:
    """Commands ending in ``&`` start without waiting (as in a shell) and are probed
    together before the next command: each one's verdict is its own, a server that dies
    fails the run like a command that fails, and a restart of a program still being
    probed does not count as that program dying."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    require_service("PostgreSQL", "127.0.0.1", 5432)
    document = tmp_path / "servers.md"
    document.write_text(  # each program once: a second start of a program is a restart
        "```bash\n"
        "sh -c 'date +%s > started-1; exec sleep 60' &\n"
        "bash -c 'echo gone; exit 3' &\n"
        "nohup sh -c 'date +%s > started-2; exec sleep 60' &\n"
        "nohup sh -c 'exec sleep 62' &\n"  # a restart: the one it replaces is judged first
        "test $(( $(cat started-2) - $(cat started-1) )) -le 2\n"
        "```\n"
    )
    code, output = _check(str(document), timeout=300)
    lines = [line for line in output.splitlines() if line.startswith(("ok", "FAILED"))]
    assert code == 1, output
    # the last command says the third server started within 2 s of the first, which
    # waiting ~5 s for the first to count as up would not allow
    assert [line.split()[0] for line in lines] == ["ok", "FAILED", "ok", "ok", "ok"], output
    assert "exited with 3" in output and "gone" in output
    assert "1 command(s) failed" in output


def test_servers_are_stopped_together(tmp_path: Path) -> None:
    """At the document's end every server gets its Ctrl-C at once (as a shell's job
    control would), not one after the other, each with its own shutdown time."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    require_service("PostgreSQL", "127.0.0.1", 5432)
    stopped = tmp_path / "stopped"
    slow_stop = f"trap 'date +%s.%N >> {stopped}; sleep 4; exit 0' INT; sleep 60 & wait"
    document = tmp_path / "servers.md"
    document.write_text(f'```bash\nsh -c "{slow_stop}" &\nbash -c "{slow_stop}" &\n```\n')
    code, output = _check(str(document), timeout=300)
    assert code == 0, output
    assert stopped.exists(), f"no server ran its Ctrl-C trap\n{output}"
    first, second = sorted(float(t) for t in stopped.read_text().split())
    assert second - first < 2.0, output  # one after the other: 4 s apart


DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_the_docs_commands_run(document: Path) -> None:
    """One document per test (each has its own run of the shared services), so the
    documents are checked side by side."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    require_service("PostgreSQL", "127.0.0.1", 5432)
    code, output = _check("--fast", str(document), timeout=3000)
    assert code == 0, output
    assert "FAILED" not in output
