"""A machine installs only the light package (``pip install mmlw``, no extras) and
publishes readings with the pika publisher; the server parts come with ``mmlw[server]``.

The slow tests build a fresh virtual environment from a copy of the sources (built in a
temporary folder, so that no ``build/`` or ``*.egg-info`` lands in the shared checkout),
with the lock file as constraints, and run the publisher and the console script there.
The message it published is then read back and validated here, with the project's code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pika
import pytest

from mmlw.messaging.pika_publisher import pika_url
from mmlw.messaging.topology import Topology
from mmlw.schemas.readings import parse_readings_message
from tests.integration.pipeline import delete_topology

# its module/session fixture is started once, on one xdist worker (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("light-publisher")

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "backend", "workers", "frontend")
# import names of what only the server extra installs; none may load on a machine
SERVER_ONLY = ("mlflow", "sklearn", "numpy", "pandas", "celery", "kombu", "sqlalchemy", "dash")
SERVER_DISTRIBUTIONS = {"mlflow", "scikit-learn", "numpy", "pandas", "celery", "kombu"}
SERVER_HINT = "mmlw demo needs the server parts: pip install 'mmlw[server]'"

MACHINE = "light-1"
COLUMNS = ["Current", "Pressure"]
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
TIMES = [START + timedelta(seconds=i) for i in range(25)]
VALUES = [[0.8 + i / 100, 1.0 - i / 200] for i in range(25)]

PUBLISH = """
import json, sys
from datetime import datetime

from mmlw.messaging.pika_publisher import PikaReadingsPublisher
from mmlw.messaging.topology import Topology

url, namespace, machine, columns, times, values, server_only = sys.argv[1:]
times = [datetime.fromisoformat(t) for t in json.loads(times)]
with PikaReadingsPublisher(url, Topology(namespace)) as publisher:
    batches = publisher.publish_readings(
        machine, json.loads(columns), times, json.loads(values), batch_size=10
    )
    confirmed = publisher.stats.confirmed
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(server_only)))
module = sys.modules["mmlw.messaging.pika_publisher"].__file__
print(json.dumps({"batches": batches, "confirmed": confirmed, "loaded": loaded, "from": module}))
"""

INSTALLED = """
import importlib.metadata, json
print(json.dumps(sorted({d.metadata["Name"].lower() for d in importlib.metadata.distributions()})))
"""


def _environment() -> dict[str, str]:
    """This process's environment without what would change what the venv imports or
    which settings the console script reads."""
    return {
        key: value
        for key, value in os.environ.items()
        if key != "PYTHONPATH" and not key.startswith("MMLW_")
    }


def _run(argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=_environment(), check=False
    )


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``mmlw`` installed from its sources without extras; its folder."""
    base = tmp_path_factory.mktemp("light")
    source = base / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile"]
    pip += ["--disable-pip-version-check", "-c", str(ROOT / "requirements.lock"), str(source)]
    installed = _run(pip, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


@pytest.fixture
def topology(rabbitmq_url: str) -> Iterator[Topology]:
    topo = Topology(namespace=f"light-{uuid.uuid4().hex[:12]}")
    yield topo
    delete_topology(rabbitmq_url, topo)


def test_publishing_chain_imports_no_server_library() -> None:
    """Fast guard (also where everything is installed): what a machine imports to publish
    loads nothing that only the server extra provides."""
    probe = (
        "import json, sys; import mmlw.messaging.pika_publisher; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(json.loads(done.stdout))
    assert "pika" in loaded
    assert loaded.isdisjoint(SERVER_ONLY), sorted(loaded & set(SERVER_ONLY))


@pytest.mark.slow
def test_light_install_has_no_server_distributions(light_venv: Path) -> None:
    done = _run([str(light_venv / "bin" / "python"), "-c", INSTALLED])
    assert done.returncode == 0, done.stderr
    installed = set(json.loads(done.stdout))
    assert {"mmlw", "pika", "pydantic"} <= installed
    assert installed.isdisjoint(SERVER_DISTRIBUTIONS), sorted(installed & SERVER_DISTRIBUTIONS)


@pytest.mark.slow
@pytest.mark.rabbitmq
def test_light_install_publishes_readings_that_meet_the_wire_contract(
    light_venv: Path, rabbitmq_url: str, topology: Topology
) -> None:
    argv = [str(light_venv / "bin" / "python"), "-c", PUBLISH, rabbitmq_url, topology.namespace]
    argv += [MACHINE, json.dumps(COLUMNS), json.dumps([t.isoformat() for t in TIMES])]
    argv += [json.dumps(VALUES), json.dumps(SERVER_ONLY)]
    done = _run(argv)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["from"].startswith(str(light_venv)), report["from"]  # the installed copy
    assert (report["batches"], report["confirmed"], report["loaded"]) == (3, 3, [])

    connection = pika.BlockingConnection(pika.URLParameters(pika_url(rabbitmq_url)))
    try:
        channel = connection.channel()
        received = []
        for _ in range(3):
            method, properties, body = channel.basic_get(topology.ingest_queue_name, auto_ack=True)
            assert method is not None, "a published batch is missing from the ingest queue"
            batch = parse_readings_message(body)
            assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
            assert properties.message_id == str(batch.message_id)
            received.append(batch)
        assert channel.basic_get(topology.ingest_queue_name, auto_ack=True)[0] is None
    finally:
        connection.close()
    assert {batch.machine_id for batch in received} == {MACHINE}
    assert all(batch.columns == COLUMNS for batch in received)
    assert [t for batch in received for t in batch.timestamps] == TIMES
    assert [row for batch in received for row in batch.values] == VALUES


@pytest.mark.slow
def test_console_script_without_the_server_extra_names_it(light_venv: Path) -> None:
    mmlw = str(light_venv / "bin" / "mmlw")
    helped = _run([mmlw, "--help"])
    assert helped.returncode == 0, helped.stderr
    assert "demo" in helped.stdout

    demo = _run([mmlw, "demo"])
    assert demo.returncode == 1
    lines = demo.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(SERVER_HINT), demo.stderr
    assert demo.stdout == ""
