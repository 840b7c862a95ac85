"""Benchmark (prints, never asserts a time): the machine page over 7 days of 1 Hz data.

One machine gets 604,800 readings (7 days at 1 Hz, 8 sensors) through the real path --
HTTP API -> broker -> ingest consumer -> store, a PCA model trained through the API,
every reading scored by the Celery worker -- and the machine page is opened on
"last 7 days" in headless Chromium. Measured from navigation start until plotly has
drawn the score, sensor and contribution figures with the whole range's data:

- cold: a fresh browser context (empty HTTP cache), like a first visit;
- warm: the same page loaded again (scripts cached, data fetched anew);
- in-app: clicking the machine on the overview (no page load; the usual way in).

Also prints the two API calls the page makes. Figures go to stdout (``pytest -s``) and
to ``test-artifacts/benchmarks/machine_page_load.txt``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mmlw.frontend.pages.machine_view import BUCKETS, SCORE_BUCKETS
from mmlw.workers.simulator import SyntheticMachine
from tests.browser.conftest import ARTIFACTS, screenshot
from tests.browser.system import LiveSystem, log_in, machine_counts, publish
from tests.integration.pipeline import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.benchmark]

MACHINE = "bench-1"
READINGS = 7 * 24 * 3600  # 604,800
BATCH = 5_000
TRAIN_ON = 3_600

# ready: every figure drawn from the full range (the note counts the readings in range)
READY = """(total) => {
    const drawn = (id, name) => {
        const gd = document.querySelector(`#${id} .js-plotly-plot`);
        return !!gd && !!gd._fullData && gd._fullData.some(t => t.name === name && t.x.length);
    };
    const note = document.querySelector('#machine-note');
    return drawn('score-graph', 'score') && drawn('sensor-graph', 'anomalous')
        && !!document.querySelector('#contributions-graph .barlayer .point')
        && !!note && note.textContent.includes(total);
}"""


def seed(system: LiveSystem) -> float:
    """604,800 readings, trained and scored; returns how long that took."""
    started = time.perf_counter()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=READINGS)
    machine = SyntheticMachine(MACHINE, seed=42, start=start, warmup=TRAIN_ON)
    publish(system, machine, TRAIN_ON, size=TRAIN_ON)
    wait_for(lambda: machine_counts(system, MACHINE)[0] == TRAIN_ON, what="warm-up readings")
    job = system.api.post(f"/machines/{MACHINE}/train", json={"last_n": TRAIN_ON}).json()
    wait_for(
        lambda: system.api.get(f"/jobs/{job['id']}").json()["state"] == "succeeded",
        what="training",
    )
    publish(system, machine, READINGS - TRAIN_ON, size=BATCH)
    wait_for(
        lambda: machine_counts(system, MACHINE) == (READINGS, READINGS),
        timeout_s=900,
        what=lambda: f"every reading scored: {machine_counts(system, MACHINE)}",
    )
    return time.perf_counter() - started


def load(page: Any, url: str) -> float:
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_function(READY, arg=f"{READINGS:,}", timeout=120_000)
    return time.perf_counter() - started


def test_machine_page_with_600k_readings(
    system_factory: Callable[[], AbstractContextManager[LiveSystem]], browser: Any
) -> None:
    lines = []
    with system_factory() as system:
        lines.append(f"seeding {READINGS:,} readings (ingest, train, score): {seed(system):.0f} s")
        for name, params in (  # what the machine page asks for
            ("readings", {"max_points": 2 * 8 * BUCKETS + 2}),
            ("scores", {"max_points": 3 * SCORE_BUCKETS + 2, "top": 0}),
        ):
            started = time.perf_counter()
            response = system.api.get(
                f"/machines/{MACHINE}/{name}", params={"limit": 1_000_000, **params}
            )
            took = time.perf_counter() - started
            assert response.status_code == 200, response.text
            assert response.headers["X-Total-Count"] == str(READINGS)
            lines.append(
                f"GET {name} (7 days, downsampled to {len(response.json()['timestamps']):,} "
                f"of {READINGS:,}): {took:.2f} s"
            )
        url = system.url(f"/machines/{MACHINE}?range=7d")
        cold, warm, in_app = [], [], []
        for _ in range(3):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            log_in(page, system)  # the login page's stylesheet only: scripts stay cold
            cold.append(load(page, url))
            warm.append(load(page, url))
            page.goto(system.url("/"))
            page.wait_for_selector(f"tr[data-id='{MACHINE}'] a.machine-link")
            started = time.perf_counter()
            page.click(f"tr[data-id='{MACHINE}'] a.machine-link")
            page.click("#machine-range label:has-text('last 7 days')")
            page.wait_for_function(READY, arg=f"{READINGS:,}", timeout=120_000)
            in_app.append(time.perf_counter() - started)
            if len(cold) == 1:
                page.goto(url)
                page.wait_for_function(READY, arg=f"{READINGS:,}", timeout=120_000)
                screenshot(page, "machine-600k")
            context.close()
        for name, times in (("cold", cold), ("warm", warm), ("in-app", in_app)):
            listed = ", ".join(f"{t:.2f}" for t in times)
            lines.append(f"machine page, 7 days = {READINGS:,} readings, {name}: {listed} s")
    report = "\n".join(lines)
    print("\n" + report)
    out = ARTIFACTS / "benchmarks" / "machine_page_load.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report + "\n")
