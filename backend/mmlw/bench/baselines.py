"""What a user would otherwise pick, measured on the same model and the same batches.

``mlflow models serve --env-manager local`` of the registered version, with concurrent
clients POSTing ``dataframe_split`` batches (scoring only: nothing is stored); the plain
pika consumer lives in :mod:`mmlw.bench.plain_consumer`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from mmlw.bench.payloads import dataframe_split_body, sensor_values
from mmlw.bench.processes import descendants, peak_rss_mb
from mmlw.ports import free_port

__all__ = ["ServeResult", "mlflow_serve_baseline"]


@dataclass(frozen=True)
class ServeResult:
    readings: int
    requests: int
    seconds: float
    workers: int
    clients: int
    peak_rss_mb: float

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds


def _mlflow_command() -> list[str]:
    script = Path(sys.executable).with_name("mlflow")
    if script.exists():
        return [str(script)]
    found = shutil.which("mlflow")
    if found is None:
        raise RuntimeError("the mlflow command is not installed")
    return [found]


def _wait_ping(base: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow models serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"mlflow models serve did not answer /ping in {timeout_s:.0f} s")


def mlflow_serve_baseline(
    *,
    tracking_uri: str,
    model_uri: str,
    batch_size: int,
    readings: int,
    workers: int,
    clients: int,
    log_path: Path,
) -> ServeResult:
    """Serve ``model_uri`` and POST ``readings`` rows in batches of ``batch_size``."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri)
    command = [
        *_mlflow_command(), "models", "serve", "-m", model_uri, "--env-manager", "local",
        "-h", "127.0.0.1", "-p", str(port), "-w", str(workers),
    ]  # fmt: skip
    bodies = [dataframe_split_body(sensor_values(batch_size, seed=s)) for s in range(8)]
    requests = -(-readings // batch_size)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ping(base, process, timeout_s=180)
            headers = {"Content-Type": "application/json"}
            with httpx.Client(timeout=60) as warm:
                for body in bodies * workers:
                    warm.post(f"{base}/invocations", content=body, headers=headers)
            counter = iter(range(requests))
            lock = threading.Lock()
            errors: list[str] = []

            def client() -> None:
                with httpx.Client(timeout=60) as http:
                    while True:
                        with lock:
                            i = next(counter, None)
                        if i is None:
                            return
                        response = http.post(
                            f"{base}/invocations", content=bodies[i % len(bodies)], headers=headers
                        )
                        if response.status_code != 200:
                            errors.append(f"{response.status_code}: {response.text[:200]}")
                            return

            threads = [threading.Thread(target=client) for _ in range(clients)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - started
            if errors:
                raise RuntimeError(f"mlflow models serve answered {errors[0]}")
            pids = [process.pid, *descendants(process.pid)]
            peak = max((m for m in map(peak_rss_mb, pids) if m is not None), default=0.0)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    return ServeResult(
        readings=requests * batch_size,
        requests=requests,
        seconds=seconds,
        workers=workers,
        clients=clients,
        peak_rss_mb=round(peak, 1),
    )
