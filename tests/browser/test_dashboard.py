"""Every page of the dashboard in headless Chromium, against a live simulated run.

The module's system: three synthetic machines publish through the API; two are trained
(the API's train endpoint) and keep publishing readings with injected faults, so they
score anomalous and raise alerts; the third never gets a model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import expect

from mmlw.frontend.status import Status
from mmlw.schemas.readings import ReadingsBatch
from mmlw.workers.simulator import SyntheticMachine
from tests.browser.conftest import screenshot
from tests.browser.system import OPERATOR_KEY, LiveSystem, machine_counts, post, publish
from tests.integration.pipeline import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser-dashboard")]

TRAINED = ("machine-1", "machine-2")
UNTRAINED = "machine-3"
WARMUP = 400


def open_alerts(system: LiveSystem, **params: str) -> list[dict[str, Any]]:
    response = system.api.get("/alerts", params={"state": "open", **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def machines() -> dict[str, SyntheticMachine]:
    return {
        machine_id: SyntheticMachine(
            machine_id, seed=10 + i, warmup=WARMUP, fault_every=150, fault_length=40
        )
        for i, machine_id in enumerate((*TRAINED, UNTRAINED))
    }


@pytest.fixture(scope="module")
def system(
    system_factory: Callable[[], AbstractContextManager[LiveSystem]],
    machines: dict[str, SyntheticMachine],
) -> Iterator[LiveSystem]:
    with system_factory() as live:
        for machine_id in TRAINED:
            publish(live, machines[machine_id], WARMUP)
        publish(live, machines[UNTRAINED], 100)
        for machine_id in TRAINED:
            wait_for(lambda m=machine_id: machine_counts(live, m)[0] == WARMUP, what=machine_id)
            job = live.api.post(f"/machines/{machine_id}/train", json={"last_n": WARMUP})
            assert job.status_code == 202, job.text
            job_id = job.json()["id"]
            wait_for(
                lambda j=job_id: live.api.get(f"/jobs/{j}").json()["state"] == "succeeded",
                what=f"training {machine_id}",
            )
        for machine_id in TRAINED:  # faults start after the warm-up readings
            publish(live, machines[machine_id], 600)
        for machine_id in TRAINED:
            wait_for(
                lambda m=machine_id: machine_counts(live, m) == (WARMUP + 600, WARMUP + 600),
                what=f"{machine_id} scored",
            )
        yield live


# --- helpers that read plotly's own state from the page --------------------------------

PLOT_STATE = """(id) => {
    const gd = document.querySelector(`#${id} .js-plotly-plot`);
    if (!gd || !gd._fullData) return null;
    return {
        traces: gd._fullData.map(t => ({
            name: t.name, type: t.type, n: t.x ? t.x.length : 0,
        })),
        shapes: (gd._fullLayout.shapes || []).length,
        title: gd._fullLayout.title && gd._fullLayout.title.text,
    };
}"""


def plot_state(page: Any, graph_id: str) -> dict[str, Any] | None:
    return page.evaluate(PLOT_STATE, graph_id)  # type: ignore[no-any-return]


def wait_for_plot(page: Any, graph_id: str, trace: str) -> dict[str, Any]:
    page.wait_for_function(
        """([id, name]) => {
            const gd = document.querySelector(`#${id} .js-plotly-plot`);
            return !!gd && !!gd._fullData && gd._fullData.some(t => t.name === name);
        }""",
        arg=[graph_id, trace],
    )
    state = plot_state(page, graph_id)
    assert state is not None
    return state


def sign_in(page: Any, name: str) -> None:
    page.wait_for_selector("#operator-state:has-text('read-only')")  # the shell is live
    page.fill("#operator-name", name)
    page.fill("#operator-key", OPERATOR_KEY)
    page.click("#operator-save")
    page.wait_for_selector(f"#operator-state:has-text('acting as {name}')")


# --- the pages -------------------------------------------------------------------------


def test_overview_lists_the_machines_worst_first(system: LiveSystem, page: Any) -> None:
    page.goto(system.url("/"))
    for machine_id in (*TRAINED, UNTRAINED):
        page.wait_for_selector(f"table.overview tr[data-id='{machine_id}']")
    rows = page.locator("table.overview tbody tr")
    order = [rows.nth(i).get_attribute("data-id") for i in range(rows.count())]
    statuses = [rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())]
    assert sorted(order) == sorted((*TRAINED, UNTRAINED))
    ranks = [Status(s).rank for s in statuses]
    assert ranks == sorted(ranks), list(zip(order, statuses, strict=True))
    assert dict(zip(order, statuses, strict=True))[UNTRAINED] == Status.NO_MODEL.value
    # each trained machine has a drawn sparkline (plotly's SVG, not just a div)
    for machine_id in TRAINED:
        row = page.locator(f"tr[data-id='{machine_id}']")
        expect(row.locator(".js-plotly-plot .scatterlayer .trace")).to_have_count(3)
        assert "v1" in row.inner_text()
    link = page.locator(f"tr[data-id='{TRAINED[0]}'] a.machine-link")
    assert link.get_attribute("href") == f"/machines/{TRAINED[0]}"
    screenshot(page, "overview")


def test_machine_page_draws_scores_sensors_and_contributions(system: LiveSystem, page: Any) -> None:
    machine_id = TRAINED[0]
    page.goto(system.url(f"/machines/{machine_id}"))
    score = wait_for_plot(page, "score-graph", "score")
    names = [t["name"] for t in score["traces"]]
    assert names == ["score", "threshold", "anomalous"]
    assert score["traces"][0]["n"] == WARMUP + 600  # all of them: no downsampling needed
    assert score["traces"][2]["n"] > 0  # the injected faults are flagged
    # the SVG that plotly drew: three traces, a line path with points in it (plotly draws
    # the SVG after it has set _fullData, possibly a frame later: counts are waited for)
    expect(page.locator("#score-graph .scatterlayer .trace")).to_have_count(3)
    assert len(page.locator("#score-graph .scatterlayer .js-line").first.get_attribute("d")) > 100

    sensors = wait_for_plot(page, "sensor-graph", "anomalous")
    columns = system.api.get(f"/machines/{machine_id}").json()["columns"]
    drawn = [t["name"] for t in sensors["traces"] if t["name"] != "anomalous"]
    assert drawn == columns
    expect(page.locator("#sensor-graph .scatterlayer .trace")).to_have_count(2 * len(columns))

    expect(page.locator("#contributions-graph .barlayer .point")).to_have_count(len(columns))
    title = plot_state(page, "contributions-graph")["title"]  # type: ignore[index]
    assert "score" in title and "threshold" in title

    champion = page.locator("#champion-info")
    assert "champion v1" in champion.inner_text()
    (version,) = system.api.get(f"/machines/{machine_id}/models").json()
    run_link = champion.locator("a.mlflow-run-link").get_attribute("href")
    assert run_link.endswith(f"/#/runs/{version['run_id']}")
    assert "readings in range" in page.inner_text("#machine-note")
    screenshot(page, "machine")


def test_a_page_load_brings_its_page_plotly_once_and_the_browsers_own_parsing(
    system: LiveSystem, page: Any
) -> None:
    page.add_init_script(
        "window.__native = [parseFloat, parseInt, String.prototype.trim, Number.parseFloat];"
    )
    plotly_requests: list[str] = []
    page.on("request", lambda r: plotly_requests.append(r.url) if "plotly.min.js" in r.url else 0)
    page.goto(system.url(f"/machines/{TRAINED[0]}"))
    wait_for_plot(page, "sensor-graph", "anomalous")
    assert len(plotly_requests) == 1  # the preload; dcc.Graph ran it from memory
    assert page.locator("script[src*='plotly.min.js']").count() == 1
    kept = page.evaluate(
        """() => [parseFloat, parseInt, String.prototype.trim, Number.parseFloat]
            .map((f, i) => f === window.__native[i])"""
    )
    assert kept == [True, True, True, True]  # not babel-polyfill's slow replacements
    page.click("nav a:has-text('Overview')")  # in-app navigation still routes
    page.wait_for_selector(f"table.overview tr[data-id='{TRAINED[0]}']")
    page.go_back()
    wait_for_plot(page, "score-graph", "score")


def test_clicking_a_moment_explains_it(system: LiveSystem, page: Any) -> None:
    page.goto(system.url(f"/machines/{TRAINED[1]}"))
    wait_for_plot(page, "score-graph", "anomalous")
    page.wait_for_selector("#contributions-graph .barlayer .point")
    before = plot_state(page, "contributions-graph")["title"]  # type: ignore[index]
    # the first anomalous marker: older than the default (the newest anomalous reading)
    page.locator("#score-graph .scatterlayer .trace").nth(2).locator(".point").first.click(
        force=True
    )
    page.wait_for_function(
        """(before) => {
            const gd = document.querySelector('#contributions-graph .js-plotly-plot');
            return gd && gd._fullLayout.title.text !== before;
        }""",
        arg=before,
    )
    after = plot_state(page, "contributions-graph")["title"]  # type: ignore[index]
    assert "(anomalous)" in after
    marker = page.evaluate(
        "() => document.querySelector('#score-graph .js-plotly-plot')._fullLayout.shapes[0]"
    )
    assert marker["visible"] is True
    assert marker["x0"][:19].replace("T", " ") in after


def test_a_new_anomalous_batch_shows_up_without_reload(
    system: LiveSystem, page: Any, machines: dict[str, SyntheticMachine]
) -> None:
    machine_id = TRAINED[0]
    page.goto(system.url(f"/machines/{machine_id}"))
    before = wait_for_plot(page, "score-graph", "anomalous")
    page.evaluate("() => { window.__same_page = true; }")
    frame = machines[machine_id].read(30)
    wild = (np.asarray(frame.values) * 3.0).tolist()  # far off every learned correlation
    newest = frame.timestamps[-1]
    post(system, ReadingsBatch.of_rows(machine_id, frame.columns, frame.timestamps, wild))
    expected = f"{newest:%Y-%m-%d %H:%M:%S}"
    page.wait_for_function(
        """([expected, n]) => {
            const gd = document.querySelector('#score-graph .js-plotly-plot');
            if (!gd || !gd._fullData) return false;
            const flagged = gd._fullData.find(t => t.name === 'anomalous');
            const xs = Array.from(flagged.x).map(v => new Date(v).toISOString().replace('T', ' '));
            return flagged.x.length > n && xs.some(v => v.startsWith(expected));
        }""",
        arg=[expected, before["traces"][2]["n"]],
    )
    assert page.evaluate("() => window.__same_page === true"), "the page was reloaded"
    screenshot(page, "machine-live-update")


def test_jobs_page_lists_the_training_jobs(system: LiveSystem, page: Any) -> None:
    page.goto(system.url("/jobs"))
    page.wait_for_selector("table.jobs tbody tr")
    jobs = system.api.get("/jobs").json()
    assert len(jobs) >= len(TRAINED)
    for job in jobs:
        row = page.locator(f"table.jobs tr[data-id='{job['id']}']")
        text = row.inner_text()
        assert job["machine_id"] in text and job["state"] in text
        if job["state"] == "succeeded":
            assert f"version {job['result']['version']}" in text
            assert " s" in text  # a duration
    screenshot(page, "jobs")


def test_models_page_trains_a_new_version_and_follows_the_job(
    system: LiveSystem, page: Any
) -> None:
    machine_id = TRAINED[1]
    page.goto(system.url(f"/models/{machine_id}"))
    page.wait_for_selector("table.models tr[data-id='1']")
    first = page.locator("table.models tr[data-id='1']")
    assert "champion" in first.inner_text()
    assert "400 readings" in first.inner_text()
    (version,) = system.api.get(f"/machines/{machine_id}/models").json()
    assert first.locator("a.run-link").get_attribute("href").endswith(version["run_id"])

    page.click("#train-button")  # without a key: refused, nothing queued
    page.wait_for_selector("#train-progress .message-error")
    assert "401" in page.inner_text("#train-progress")
    assert len(system.api.get("/jobs", params={"machine_id": machine_id}).json()) == 1

    sign_in(page, "dana")
    page.fill("#train-last-n", "500")
    page.click("#train-button")
    page.wait_for_selector("#train-progress .message-success", timeout=60_000)
    assert "version 2" in page.inner_text("#train-progress")
    # the table refreshes on the page's tick: a refresh between the version's registration
    # and its alias shows it without one, and the next tick shows the alias
    page.wait_for_selector("table.models tr[data-id='2']:has-text('challenger')")
    assert "500 readings" in page.inner_text("table.models tr[data-id='2']")
    screenshot(page, "models")

    # promote v2 past the gate, then roll back to v1: both visible in the API
    page.check("#promote-force input[value='force']")
    page.click("#promote-button")
    page.wait_for_selector("#alias-result .message-success")
    assert "champion v1 -> v2" in page.inner_text("#alias-result")
    assert system.api.get(f"/machines/{machine_id}").json()["champion_version"] == 2
    page.fill("#alias-version", "1")
    page.click("#rollback-button")
    page.wait_for_selector("#alias-result:has-text('champion v2 -> v1')")
    history = system.api.get(f"/machines/{machine_id}/models/history").json()
    assert [(e["alias"], e["to_version"], e["actor"]) for e in history][-3:] == [
        ("champion", 2, "dana"),
        ("challenger", None, "dana"),
        ("champion", 1, "dana"),
    ]


# --- alerts: acknowledge and silence from the page ---------------------------------------


@pytest.fixture(scope="module")
def alert(system: LiveSystem) -> dict[str, Any]:
    """An open, unacknowledged alert raised by the run's injected faults."""

    def found() -> list[dict[str, Any]]:
        return [a for a in open_alerts(system) if not a["acknowledged"]]

    wait_for(lambda: bool(found()), what="an open alert from the injected faults")
    return found()[0]


def test_acknowledging_an_alert_in_the_page_changes_it_in_the_api(
    system: LiveSystem, page: Any, alert: dict[str, Any]
) -> None:
    page.goto(system.url("/alerts"))
    row = f"table.alerts tr[data-id='{alert['id']}']"
    page.wait_for_selector(row)
    assert alert["machine_id"] in page.inner_text(row)

    page.click(f"{row} button:has-text('Acknowledge')")  # no key yet: refused
    page.wait_for_selector("#alerts-feedback .message-error")
    assert "401" in page.inner_text("#alerts-feedback")
    assert system.api.get(f"/alerts/{alert['id']}").json()["acknowledged"] is False

    sign_in(page, "alice")
    page.click(f"{row} button:has-text('Acknowledge')")
    page.wait_for_selector("#alerts-feedback .message-success")
    wait_for(
        lambda: system.api.get(f"/alerts/{alert['id']}").json()["acknowledged"],
        what="the acknowledgement in the API",
    )
    stored = system.api.get(f"/alerts/{alert['id']}").json()
    assert stored["acknowledged_by"] == "alice"
    # it left the "open, not acknowledged" view and shows under "acknowledged"
    page.wait_for_selector(row, state="detached")
    page.click("#alerts-view label:has-text('acknowledged') >> nth=-1")
    page.wait_for_selector(f"{row} button:has-text('Unacknowledge')")
    screenshot(page, "alerts")


CLICK_AS_AN_ANSWER_ARRIVES = """(selector) => {
    // the next answer that redraws the alerts table arrives just after this click
    window.__clickOnAnswer = selector;
    if (window.__clickWrapped) { return; }
    window.__clickWrapped = true;
    const fetchFirst = window.fetch;
    window.fetch = async (...args) => {
        const answer = await fetchFirst(...args);
        const body = args[1] && typeof args[1].body === "string" ? args[1].body : "";
        const button = window.__clickOnAnswer && body.includes("alerts-body")
            && document.querySelector(window.__clickOnAnswer);
        if (button) { window.__clickOnAnswer = null; button.click(); }
        return answer;
    };
}"""


def test_a_click_as_a_redraw_arrives_is_acted_on(
    system: LiveSystem, page: Any, alert: dict[str, Any]
) -> None:
    """Each click lands just as an answer that redraws the table arrives (the page's
    fetch is wrapped to click then), and each must still reach the API. (A suspect for the
    silencing test's one CI failure, a pressed button and no callback; the code before
    ``assets/actions.js`` passed this too, so that failure's cause is not pinned down.)"""
    page.goto(system.url("/alerts"))
    sign_in(page, "carol")
    page.click("#alerts-view input[value='all']")
    row = f"table.alerts tr[data-id='{alert['id']}']"
    for _ in range(4):
        acknowledged = system.api.get(f"/alerts/{alert['id']}").json()["acknowledged"]
        button = "Unacknowledge" if acknowledged else "Acknowledge"
        page.wait_for_selector(f"{row} button:has-text('{button}')")
        page.evaluate(CLICK_AS_AN_ANSWER_ARRIVES, f"{row} button.alert-{'un' * acknowledged}ack")
        wait_for(
            lambda was=acknowledged: (
                system.api.get(f"/alerts/{alert['id']}").json()["acknowledged"] is not was
            ),
            what=f"the {button.lower()} click to reach the API",
        )


def test_silencing_from_the_alerts_page(
    system: LiveSystem, page: Any, alert: dict[str, Any]
) -> None:
    page.goto(system.url("/alerts"))
    sign_in(page, "bob")
    page.click("#alerts-view label:has-text('all')")
    row = f"table.alerts tr[data-id='{alert['id']}']"
    page.wait_for_selector(row)
    page.click(f"{row} button:has-text('Silence')")
    page.wait_for_selector("#alerts-feedback .message-success")
    silences = system.api.get("/silences").json()
    mine = [s for s in silences if s["created_by"] == "bob" and s["active"]]
    assert len(mine) == 1
    silence = mine[0]
    assert silence["matchers"] == {"machine_id": alert["machine_id"], "rule": alert["rule"]}
    assert timedelta(minutes=59) < _span(silence) <= timedelta(hours=1, minutes=1)

    expire = f"table.silences tr[data-id='{silence['id']}'] button:has-text('Expire')"
    page.wait_for_selector(expire)
    screenshot(page, "alerts-silenced")
    page.click(expire)
    wait_for(
        lambda: (
            not any(
                s["active"] for s in system.api.get("/silences").json() if s["id"] == silence["id"]
            )
        ),
        what="the silence to expire",
    )


def _span(silence: dict[str, Any]) -> timedelta:
    from datetime import datetime

    return datetime.fromisoformat(silence["ends_at"]) - datetime.fromisoformat(silence["starts_at"])


# --- a challenger scoring in shadow -------------------------------------------------------


def test_machine_and_models_pages_show_the_challengers_shadow_scores(
    system: LiveSystem, page: Any, machines: dict[str, SyntheticMachine]
) -> None:
    """Last in the module: it gives machine-1 a challenger (more readings, no promotion)."""
    machine_id = TRAINED[0]
    job = system.api.post(
        f"/machines/{machine_id}/train", json={"last_n": WARMUP, "threshold_quantile": 0.9}
    )
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]
    wait_for(
        lambda: system.api.get(f"/jobs/{job_id}").json()["state"] == "succeeded",
        what="training the challenger",
    )
    version = system.api.get(f"/jobs/{job_id}").json()["result"]["version"]
    publish(system, machines[machine_id], 300)

    def compared() -> dict[str, Any]:
        return system.api.get(f"/machines/{machine_id}/scores/compare").json()  # type: ignore[no-any-return]

    wait_for(lambda: compared()["summary"]["n_compared"] >= 300, what="shadow scores")
    wait_for(lambda: len(set(machine_counts(system, machine_id))) == 1, what="all scored")
    summary = compared()["summary"]

    page.goto(system.url(f"/machines/{machine_id}"))
    label = f"challenger v{version} (shadow)"
    score = wait_for_plot(page, "score-graph", label)
    names = [t["name"] for t in score["traces"]]
    assert names == ["score", "threshold", "anomalous", label]
    assert 300 <= score["traces"][3]["n"] <= score["traces"][0]["n"]
    drawn = page.locator("#score-graph .scatterlayer .trace").nth(3).locator(".js-line")
    assert "dasharray" in (drawn.get_attribute("style") or "")  # dashed, as drawn
    shadow = page.locator("#shadow-info")
    shadow.wait_for()
    text = shadow.inner_text()
    assert f"{label} vs champion v1 on {summary['n_compared']:,} readings" in text
    assert f"challenger flags {summary['challenger_flagged']:,}" in text
    assert f"champion {summary['champion_flagged']:,}," in text
    assert f"disagree on {summary['disagreements']:,}" in text
    screenshot(page, "machine-shadow")

    page.goto(system.url(f"/models/{machine_id}"))
    page.wait_for_selector("#models-shadow")
    text = page.inner_text("#models-shadow")
    assert f"{label} vs champion v1 on {summary['n_compared']:,} readings" in text
    assert f"disagree on {summary['disagreements']:,}" in text
