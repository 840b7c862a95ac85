"""The shared services as ``docs/check_commands.py`` uses them: each run gets its own
broker namespace, broker users, PostgreSQL user and database, ports and scratch clone,
and removes them afterwards. The docs name shared things (``mmlw-publisher``, the
database ``mmlw``); :meth:`Run.rewrites` turns those names into the run's own in the
command text before it runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    unique: str
    ports: dict[str, int]

    def rewrites(self) -> list[tuple[str, str]]:
        """Names of shared things in the docs -> this run's own (regex, replacement)."""
        u, provision = self.unique, "mmlw.messaging.provision"
        return [
            (r"mmlw\.messaging\.provision", f"{provision} --user-prefix {u} --namespace {u}"),
            (r"--namespace mmlw\b", f"--namespace {u}"),
            (r"amqp://mmlw-", f"amqp://{u}-"),
            (r"\b(USER|OWNER|DATABASE) mmlw\b", rf"\1 {u}"),
            (r"postgresql\+psycopg://mmlw:", f"postgresql+psycopg://{u}:"),
            (r"127\.0\.0\.1:5432/mmlw\b", f"127.0.0.1:5432/{u}"),
            (r"--port 5000\b", f"--port {self.ports['mlflow']}"),
            (r"mkdocs serve\b", f"mkdocs serve -a 127.0.0.1:{self.ports['mkdocs']}"),
        ]


def scratch_clone(root: Path) -> Path:
    """A clone-like folder: symlinks to this checkout, ``docs/`` copied (the generators
    rewrite it), ``../shared`` reachable as from the checkout."""
    clone = root / "clone"
    clone.mkdir()
    for entry in REPO.iterdir():
        if entry.name in {".git", ".mmlw-data", "docs"}:
            continue
        (clone / entry.name).symlink_to(entry)
    shutil.copytree(REPO / "docs", clone / "docs")
    if (REPO.parent / "shared").exists():
        (root / "shared").symlink_to(REPO.parent / "shared")
    return clone


SHIMS = {  # first on PATH: as root, sudo runs the command; psql is the loopback superuser
    "sudo": 'while [ "${1#-}" != "$1" ]; do [ "$1" = -u ] && shift; shift; done; exec "$@"',
    "psql": f'exec {shutil.which("psql")} -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 "$@"',
}


def base_env(root: Path, run: Run) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMLW_", "RABBITMQ_"))}
    home, shims = root / "home", root / "bin"
    home.mkdir(exist_ok=True)
    shims.mkdir(exist_ok=True)
    for name, body in SHIMS.items():
        if name == "sudo" and (shutil.which("sudo") or os.geteuid() != 0):
            continue
        (shims / name).write_text(f"#!/bin/bash\n{body}\n")
        (shims / name).chmod(0o755)
    env.update(
        PATH=f"{shims}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        MMLW_BROKER__NAMESPACE=run.unique,
        MMLW_API__PORT=str(run.ports["api"]),
        MMLW_DASHBOARD__PORT=str(run.ports["dashboard"]),
        MMLW_DASHBOARD__API_URL=f"http://127.0.0.1:{run.ports['api']}",
        MMLW_MODELS__REGISTERED_MODEL_PREFIX=f"{run.unique}-",
        PYTHONUNBUFFERED="1",
    )
    return env


def clean_up(unique: str) -> None:
    """Remove what the run made on the shared services: its PostgreSQL database and user,
    its broker users, and its namespace's queues and exchanges."""
    for sql in (f"DROP DATABASE IF EXISTS {unique} WITH (FORCE)", f"DROP ROLE IF EXISTS {unique}"):
        _quiet(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", sql])
    for _ in range(3):  # rabbitmqctl answers nothing while a test restarts the broker
        users = _quiet(["rabbitmqctl", "-q", "list_users"]).split()
        ours = [u for u in users if u.startswith(f"{unique}-")]
        for user in ours:
            _quiet(["rabbitmqctl", "-q", "delete_user", user])
        if users and not ours:
            break
    else:
        print(f"  warning: broker users {unique}-* may be left; see rabbitmqctl list_users")
    queues = _quiet(["rabbitmqctl", "-q", "list_queues", "name"]).split()
    exchanges = _quiet(["rabbitmqctl", "-q", "list_exchanges", "name"]).split()
    import pika  # the light package's broker client

    with pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@127.0.0.1:5672/%2F")) as c:
        channel = c.channel()
        for queue in (q for q in queues if q.startswith(f"{unique}.")):
            channel.queue_delete(queue)
        for exchange in (e for e in exchanges if e.startswith(f"{unique}.")):
            channel.exchange_delete(exchange)


def _quiet(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout


def consumers(queue: str) -> int:
    """How many consumers ``queue`` has on the local broker (0: none, or no such queue)."""
    for line in _quiet(["rabbitmqctl", "-q", "list_queues", "name", "consumers"]).splitlines():
        name, _, count = line.partition("\t")
        if name == queue and count.strip().isdigit():
            return int(count)
    return 0
