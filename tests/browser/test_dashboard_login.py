"""The dashboard's login in headless Chromium: a visitor without a key sees the login page
and nothing else; with one, the pages (plotly graphs included) render under the
Content-Security-Policy without a single violation; logging out closes them again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from playwright.sync_api import expect

from mmlw.workers.simulator import SyntheticMachine
from tests.browser.conftest import screenshot
from tests.browser.system import READ_KEY, LiveSystem, machine_counts, publish
from tests.integration.pipeline import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser-login")]

MACHINE = "pump-1"
READINGS = 200
# Every CSP violation the page sees, as the browser reports it to the page.
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
    window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def system(
    system_factory: Callable[[], AbstractContextManager[LiveSystem]],
) -> Iterator[LiveSystem]:
    with system_factory() as live:
        publish(live, SyntheticMachine(MACHINE, seed=3), READINGS)
        wait_for(lambda: machine_counts(live, MACHINE)[0] == READINGS, what="the readings")
        yield live


@pytest.fixture
def visitor(browser: Any) -> Iterator[tuple[Any, list[str]]]:
    """A page not logged in, and the console messages about content security it logs."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.add_init_script(WATCH_CSP)
    console: list[str] = []
    page.on(
        "console",
        lambda m: console.append(m.text) if "Content Security Policy" in m.text else None,
    )
    yield page, console
    context.close()


def test_login_then_pages_render_under_the_csp(
    system: LiveSystem, visitor: tuple[Any, list[str]]
) -> None:
    page, console = visitor
    api_calls: list[str] = []
    page.on("request", lambda r: api_calls.append(r.url) if "/api/" in r.url else None)
    first = page.goto(system.url(f"/machines/{MACHINE}"))
    assert page.url == system.url(f"/login?next=%2Fmachines%2F{MACHINE}")
    assert (
        first is not None and "frame-ancestors 'none'" in first.headers["content-security-policy"]
    )
    assert page.title() == "MMLW - log in"
    assert page.locator("#page, nav, .js-plotly-plot").count() == 0  # the login and nothing else

    page.fill("#key", "mmlw_wrong")
    page.click("button[type=submit]")
    assert "does not accept this key" in page.inner_text(".login-error")

    page.fill("#key", READ_KEY)
    page.click("button[type=submit]")
    page.wait_for_url(system.url(f"/machines/{MACHINE}"))
    page.wait_for_function(
        """() => {
            const gd = document.querySelector('#sensor-graph .js-plotly-plot');
            return !!gd && !!gd._fullData && gd._fullData.length > 0;
        }"""
    )
    expect(page.locator("#sensor-graph .scatterlayer .trace").first).to_be_attached()  # SVG
    page.click("nav a:has-text('Overview')")
    page.wait_for_selector(f"table.overview tr[data-id='{MACHINE}']")
    screenshot(page, "login-overview")
    assert page.evaluate("() => window.__csp") == []
    assert console == []
    assert api_calls == []  # the browser talks to the dashboard only

    page.click("#logout")
    page.wait_for_url(system.url("/login?out"))
    assert "logged out" in page.inner_text(".login-note")
    page.goto(system.url("/"))
    assert page.url == system.url("/login")
    assert page.locator("table.overview").count() == 0


def test_the_dashboard_refuses_to_be_framed(
    system: LiveSystem, visitor: tuple[Any, list[str]]
) -> None:
    page, _ = visitor
    page.set_content(f'<iframe id="f" src="{system.url("/login")}"></iframe>')
    page.wait_for_timeout(1_000)
    frame = page.frame_locator("#f")
    assert frame.locator("#key").count() == 0  # the browser did not render it inside
