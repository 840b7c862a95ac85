"""Run the shell commands of README.md and docs/*.md, so that the manual stays true.

    python3 docs/check_commands.py            # everything it can run here
    python3 docs/check_commands.py --fast     # without the multi-minute runs
    python3 docs/check_commands.py --list     # only say what would run, and how

Commands come from fenced ``bash`` / ``sh`` / ``console`` blocks (``$ `` lines of a
console block). Each document is one shell session in a scratch clone (symlinks to this
checkout, ``docs/`` copied, a fresh ``.mmlw-data`` and ``$HOME``): variables and shell
functions a command defines carry over to the next one of the same document. A command
is

- run, and ok when it exits 0 (parts of ``a && b`` that install software are dropped);
- a server (``mmlw demo``/``api``/``worker``/``scorer``/``ingest``/``beat``/``dashboard``/
  ``simulate``, ``mlflow ui``, ``mkdocs serve``, or anything ending in ``&``): started in
  the background, probed (HTTP for those that serve it, else still alive after a while),
  stopped with Ctrl-C (SIGINT), all at once, when its document is done. Commands ending
  in ``&`` in a row start one after another without waiting, as in a reader's shell, and
  are probed together before the next command;
- skipped, with the reason: a ``<!-- check: skip (reason) -->`` line right before its
  block, or Docker, package installs, the test suite. ``<!-- check: slow -->`` (or a
  known multi-minute command) is skipped by ``--fast`` only.

The shared services are never touched under the names the docs use: the session gets a
unique broker namespace, free ports, broker users and a PostgreSQL user and database of
its own (rewritten in the command text, see REWRITES), all removed afterwards. As root,
``sudo`` runs the command itself and ``psql`` reaches the local server over loopback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from check_isolation import Run, base_env, clean_up, consumers, scratch_clone

from mmlw.ports import free_port

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(bash|sh|console)\s*$")
MARKER = re.compile(r"^<!--\s*check:\s*(skip|slow)\s*(?:\((.*)\))?\s*-->$")
SERVER_ERROR = re.compile(r"Traceback \(most recent call last\)|^Error: ", re.M)
ASSIGNMENTS = re.compile(r"""^(?:[A-Za-z_]\w*=(?:\$\([^)]*\)|"[^"]*"|'[^']*'|[^\s$"']+)*\s+)*""")
SKIPPED_PARTS = (  # (pattern, why): parts of a command this check does not run
    (re.compile(r"^(\S*/)?pip3? install\b"), "installs packages (this check runs installed)"),
    (re.compile(r"^python3? -m venv\b"), "creates a virtual environment"),
    (re.compile(r"^\. \S*activate$"), "activates a virtual environment"),
)
SKIPPED = (  # (pattern, why): whole commands this check does not run
    (re.compile(r"^docker\b|\bdocker exec\b"), "needs Docker"),
    (re.compile(r"^(sudo )?apt-get\b"), "installs system packages"),
    (re.compile(r"^python3? -m pytest\b"), "the test suite itself"),
)
SLOW = re.compile(
    r"^(mmlw (bench|evaluate|tune|select-settings)\b|python3? -m (mypy|ruff)\b"
    r"|python3? \.\./shared/)"
)
SERVERS = re.compile(
    r"^(mmlw (demo|api|worker|scorer|ingest|beat|dashboard|simulate)|mlflow ui"
    r"|python3? -m mkdocs serve)\b"
)


@dataclass
class Command:
    source: str  # "docs/x.md:12"
    text: str
    skip: str | None = None
    slow: bool = False


@dataclass
class Session:
    """One document's shell: its environment, its functions, its background servers."""

    env: dict[str, str]
    cwd: Path
    functions: str = ""
    servers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    keys: dict[int, str] = field(default_factory=dict)  # pid -> program, e.g. `mmlw demo`
    logs: Path = Path()


def extract(path: Path) -> Iterator[Command]:
    """Every command of ``path``'s shell blocks, continuation lines joined."""
    lines = path.read_text(encoding="utf-8").splitlines()
    relative = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)
    previous, i = "", 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            previous = lines[i].strip() or previous
            i += 1
            continue
        marker = MARKER.match(previous)
        skip = (marker[2] or "marked skip") if marker and marker[1] == "skip" else None
        slow = bool(marker and marker[1] == "slow")
        i += 1
        pending, start = "", 0
        while i < len(lines) and not lines[i].startswith("```"):
            line = lines[i]
            if fence[1] == "console":
                line = line[2:] if line.startswith("$ ") else ("" if not pending else line)
            if line.strip() and (pending or not line.lstrip().startswith("#")):
                start = start if pending else i + 1
                if line.rstrip().endswith("\\"):
                    pending += line.rstrip()[:-1] + " "
                else:
                    text = _uncommented(" ".join((pending + line).split()))
                    yield Command(f"{relative}:{start}", text, skip, slow)
                    pending = ""
            i += 1
        previous, i = "", i + 1


def _uncommented(text: str) -> str:
    """``text`` without a trailing ``# comment`` (one outside quotes)."""
    for found in re.finditer(r"\s#", text):
        head = text[: found.start()]
        if head.count("'") % 2 == 0 and head.count('"') % 2 == 0:
            return head.rstrip()
    return text


def plan(command: Command) -> tuple[str, str]:
    """(what to run, why parts were dropped) or ("", why skipped) for one command."""
    if command.skip:
        return "", command.skip
    dropped: list[str] = []
    kept: list[str] = []
    for part in command.text.split(" && "):
        why = next((w for p, w in SKIPPED_PARTS if p.search(_bare(part))), None)
        (dropped if why else kept).append(why or part)
    text = " && ".join(kept)
    why = next((w for p, w in SKIPPED if p.search(_bare(text))), None)
    if why or not text:
        return "", why or "; ".join(dropped)
    return text, "; ".join(f"not run: {d}" for d in dropped)


def _bare(text: str) -> str:
    """The command without leading ``NAME=value`` assignments."""
    return ASSIGNMENTS.sub("", text, count=1)


def is_slow(command: Command, text: str) -> bool:
    duration = re.search(r"--duration (\d+)", text)
    return (
        command.slow or bool(SLOW.search(_bare(text))) or bool(duration and int(duration[1]) > 120)
    )


def is_server(text: str) -> bool:
    bare = _bare(text)
    return text.rstrip().endswith("&") or (bool(SERVERS.search(bare)) and "--duration" not in bare)


def run_foreground(session: Session, text: str, timeout: float) -> tuple[int, str]:
    """Run ``text`` in the session's shell; keep the variables and functions it defines."""
    state = session.logs / "state"
    script = (
        f"{session.functions}\n{text}\n__rc=$?\n"
        f"declare -f > {state}.fn; env -0 > {state}.env\nexit $__rc\n"
    )
    try:
        done = subprocess.run(
            ["bash", "-c", script], cwd=session.cwd, env=session.env, timeout=timeout,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        output = done.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as exc:
        return 124, (exc.stdout or b"").decode(
            errors="replace"
        ) + f"\n(timed out after {timeout:.0f} s)"
    if Path(f"{state}.env").is_file():
        raw = Path(f"{state}.env").read_bytes().split(b"\0")
        session.env = dict(e.decode().split("=", 1) for e in raw if b"=" in e)
        session.functions = Path(f"{state}.fn").read_text()
    return done.returncode, output


@dataclass
class Launched:
    """A server started in the background, and what says it is up."""

    process: subprocess.Popen[bytes]
    log: Path
    probe: Callable[[], bool]
    program: str
    started: float = field(default_factory=time.monotonic)


#: a server started in the background and not yet probed: its command and plan note
Waiting = tuple[Command, Launched, str]


def _program(text: str) -> str:
    """What makes a server the same program as another (``mmlw demo``, ``mlflow ui``)."""
    return " ".join(_bare(text).split()[:2])


def _interruptible() -> None:
    """In the server's child before exec: Ctrl-C as a shell's job gets it. A command a
    non-interactive shell starts in the background (``cmd &``, as CI may start the
    suite) ignores SIGINT, and so does all it starts; a shell that starts with SIGINT
    ignored may not even trap it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def launch_server(session: Session, text: str, run: Run) -> Launched:
    """Start ``text`` in the background; it keeps running until the session ends."""
    key = _program(text)  # a second `mmlw demo` is a restart
    stop_servers(session, [s for s in session.servers if session.keys.get(s.pid) == key])
    log = session.logs / f"server-{len(list(session.logs.glob('server-*')))}.log"
    server = subprocess.Popen(
        ["bash", "-c", f"{session.functions}\n{text.rstrip().rstrip('&')}", key],
        cwd=session.cwd, env=session.env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=_interruptible,
    )  # fmt: skip
    session.servers.append(server)
    session.keys[server.pid] = key
    return Launched(server, log, probes(_bare(text), run, session.env), key)


def await_servers(launched: list[Launched], within: float = 240) -> list[tuple[bool, str, float]]:
    """Probe servers started together until each is up, has failed or ``within`` s have
    passed: (ok, what, when it was known) for each, in order."""
    results: dict[int, tuple[bool, str, float]] = {}
    deadline = time.monotonic() + within
    while len(results) < len(launched) and time.monotonic() < deadline:
        for i, server in enumerate(launched):
            if i not in results and (verdict := _verdict(server)) is not None:
                results[i] = (*verdict, time.monotonic())
        if len(results) < len(launched):
            time.sleep(1)
    late = time.monotonic()
    return [
        results.get(i, (False, f"no answer within {within:.0f} s\n{_server_tail(s)}", late))
        for i, s in enumerate(launched)
    ]


def _verdict(server: Launched) -> tuple[bool, str] | None:
    """Failed, up, or not known yet (None)."""
    if server.process.poll() is not None:
        return False, f"exited with {server.process.returncode}\n{_server_tail(server)}"
    if SERVER_ERROR.search(server.log.read_text(errors="replace")):
        return False, f"reported an error\n{_server_tail(server)}"
    if server.probe():
        return True, f"running, pid {server.process.pid}"
    return None


def _server_tail(server: Launched) -> str:
    return _tail(server.log.read_text(errors="replace"))


def probes(bare: str, run: Run, env: dict[str, str]) -> Callable[[], bool]:
    """What says a server is up: its HTTP port answers, its queue has a consumer, or it
    is still alive after a while: beat after 5 s (a bad broker URL or schedule stops it
    at once), the simulator after 20 s (the commands after it need that many readings)."""
    api = env.get("MMLW_API__PORT", "8000")
    dashboard = env.get("MMLW_DASHBOARD__PORT", "8050")
    urls = {
        "mmlw demo": [f"http://127.0.0.1:{api}/health", f"http://127.0.0.1:{dashboard}/"],
        "mmlw api": [f"http://127.0.0.1:{api}/health"],
        "mmlw dashboard": [f"http://127.0.0.1:{dashboard}/"],
        "mlflow ui": [f"http://127.0.0.1:{run.ports['mlflow']}/"],
        "python3 -m mkdocs": [f"http://127.0.0.1:{run.ports['mkdocs']}/"],
    }
    found = next((u for name, u in urls.items() if bare.startswith(name)), None)
    if found is not None:
        return lambda: all(_answers(url) for url in found)
    queues = {"mmlw ingest": "ingest", "mmlw worker": "train", "mmlw scorer": "score.0"}
    queue = next((q for name, q in queues.items() if bare.startswith(name)), None)
    if queue is not None:
        return lambda: consumers(f"{env.get('MMLW_BROKER__NAMESPACE', 'mmlw')}.{queue}") > 0
    started, alive_for = time.monotonic(), 20 if bare.startswith("mmlw simulate") else 5
    return lambda: time.monotonic() - started > alive_for


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def stop_servers(
    session: Session, servers: list[subprocess.Popen[bytes]] | None = None
) -> list[str]:
    """Ctrl-C the session's servers (default: all) at once, as a shell's Ctrl-C reaches a
    whole job; SIGTERM the ones still running after 60 s, SIGKILL after 15 more. The ones
    that would not stop, named."""
    servers = list(reversed(session.servers if servers is None else servers))
    stubborn = []
    for sig, wait in ((signal.SIGINT, 60), (signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        running = [server for server in servers if server.poll() is None]
        for server in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, sig)
        deadline = time.monotonic() + wait
        for server in running:
            try:
                server.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                if sig != signal.SIGKILL:
                    program = session.keys.get(server.pid, "server")
                    stubborn.append(f"pid {server.pid} ({program}) ignored {sig.name}")
    for server in servers:
        session.servers.remove(server)
    return stubborn


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join("    | " + line for line in text.rstrip().splitlines()[-lines:])


def check(paths: list[Path], *, fast: bool, dry: bool, keep: bool = False) -> int:
    """Run every document's commands; print one line per command; the number failed.
    Each document has its own run (namespace, users, database, ports): tasks one leaves
    queued never reach another's fresh store."""
    failed = 0
    root = Path(tempfile.mkdtemp(prefix="mmlw-docs-"))
    if not dry:
        print(f"scratch: {root}" + (" (kept)" if keep else ""))
    try:
        for path in paths:
            failed += _check_document(path, root / path.stem, fast=fast, dry=dry)
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    return failed


def runs_something(path: Path, *, fast: bool) -> bool:
    """Whether any command of ``path`` would run (with ``fast``: any but the slow ones)."""
    for command in extract(path):
        text, _ = plan(command)
        if text and not (fast and is_slow(command, text)):
            return True
    return False


def _check_document(path: Path, root: Path, *, fast: bool, dry: bool) -> int:
    if not dry and not runs_something(path, fast=fast):
        # nothing to run: no run is set up (no clone, users, database), the skips are listed
        for command in extract(path):
            _check_one(None, command, None, fast=fast, dry=dry)
        return 0
    run = Run(
        f"chk{uuid.uuid4().hex[:8]}",
        {n: free_port() for n in ("api", "dashboard", "mlflow", "mkdocs")},
    )
    logs = root / "logs"
    logs.mkdir(parents=True)
    session = Session(base_env(root, run), scratch_clone(root), logs=logs)
    failed = 0
    waiting: list[Waiting] = []
    try:
        for command in extract(path):
            failed += _check_one(session, command, run, fast=fast, dry=dry, waiting=waiting)
        failed += _await_waiting(waiting)
    finally:
        for problem in stop_servers(session):
            print(f"  warning: {problem}")
        if not dry:
            clean_up(run.unique)
    return failed


def _check_one(
    session: Session | None,
    command: Command,
    run: Run | None,
    *,
    fast: bool,
    dry: bool,
    waiting: list[Waiting] | None = None,
) -> int:
    """Run, serve or skip one command (``session`` and ``run`` None: only skips come); the
    number of commands that failed.

    A command ending in ``&`` returns at once in a reader's shell, so with ``waiting`` it
    is only started and added there: :func:`_await_waiting` probes such servers together
    before the next command that is not one."""
    text, note = plan(command)
    for pattern, replacement in run.rewrites() if run is not None else ():
        text = re.sub(pattern, replacement, text)
    if not text:
        print(f"skipped {command.source}  {_shown(command)}\n        ({note})")
        return 0
    if fast and is_slow(command, text):
        print(f"skipped {command.source}  {_shown(command)}\n        (slow: not run with --fast)")
        return 0
    server = is_server(text)
    if dry:
        kind = ("server" if server else "run") + (" (slow)" if is_slow(command, text) else "")
        print(f"{kind:<7} {command.source}  {text}" + (f"  ({note})" if note else ""))
        return 0
    assert session is not None and run is not None, "a command to run needs a run"
    if waiting is not None and server and text.rstrip().endswith("&"):
        # a restart of a program still being probed waits for that one's verdict first
        restart = any(launched.program == _program(text) for _, launched, _ in waiting)
        failed = _await_waiting(waiting) if restart else 0
        waiting.append((command, launch_server(session, text, run), note))
        return failed
    failed = _await_waiting(waiting or [])
    if server:
        return failed + _await_waiting([(command, launch_server(session, text, run), note)])
    started = time.monotonic()
    timeout = 1800.0 if is_slow(command, text) else 600.0
    code, output = run_foreground(session, text, timeout)
    _report(command, code == 0, f"exit {code}\n{_tail(output)}", time.monotonic() - started, note)
    return failed + (code != 0)


def _await_waiting(waiting: list[Waiting]) -> int:
    """Probe the servers started in the background since the last command, together;
    report each; the number that are not up."""
    if not waiting:
        return 0
    results = await_servers([launched for _, launched, _ in waiting])
    for (command, launched, note), (up, output, known) in zip(waiting, results, strict=True):
        _report(command, up, output, known - launched.started, note)
    waiting.clear()
    return sum(not up for up, _, _ in results)


def _shown(command: Command) -> str:
    return command.text if len(command.text) < 90 else command.text[:87] + "..."


def _report(command: Command, ok: bool, output: str, took: float, note: str) -> None:
    print(
        f"{'ok' if ok else 'FAILED':<7} {command.source}  {_shown(command)}  [{took:.0f} s]"
        + (f"  ({note})" if note else "")
    )
    if not ok:
        print(output)
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("docs", nargs="*", type=Path, help="default: README.md and docs/*.md")
    parser.add_argument("--fast", action="store_true", help="skip the multi-minute commands")
    parser.add_argument("--list", action="store_true", help="classify only, run nothing")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir and logs")
    args = parser.parse_args()
    # a SIGTERM (a test's timeout) unwinds like Ctrl-C: servers stopped, services cleaned
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    paths = [p.resolve() for p in args.docs] or [
        REPO / "README.md",
        *sorted((REPO / "docs").glob("*.md")),
    ]
    failed = check(paths, fast=args.fast, dry=args.list, keep=args.keep)
    print(f"\n{failed} command(s) failed" if failed else "\nall commands ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
