"""``mmlw dashboard`` as a process: it serves its login, its health route, and nothing
else without a session."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from mmlw.ports import free_port


def test_mmlw_dashboard_serves_the_app() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMLW_")}
    command = [
        sys.executable, "-m", "mmlw.cli", "dashboard", "--port", str(port),
        "--api-url", "http://127.0.0.1:9", "--mlflow-url", "http://mlflow.example",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, health = time.monotonic() + 60, None
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    health = client.get(f"{base}/health")
                    break
                except httpx.HTTPError:
                    time.sleep(0.3)
            assert health is not None and health.status_code == 200, "no /health"
            assert health.json() == {"status": "ok"}
            page = client.get(f"{base}/machines/pump-1")  # every page: the login first
            assert page.status_code == 302
            assert page.headers["location"] == "/login?next=%2Fmachines%2Fpump-1"
            login = client.get(f"{base}/login")
            assert login.status_code == 200 and "<title>MMLW - log in</title>" in login.text
            assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
            layout = client.get(f"{base}/_dash-layout")
            assert layout.status_code == 401 and '"operator"' not in layout.text
            refused = client.post(f"{base}/login", data={"key": "mmlw_any"})
            assert refused.status_code == 401  # the API at port 9 does not answer
            assert "The API did not answer" in refused.text
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert f"dashboard: http://127.0.0.1:{port}/" in output, output[-2000:]
