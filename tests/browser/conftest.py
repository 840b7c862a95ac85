"""The dashboard against a real system, in headless Chromium.

The browser is Debian's ``chromium`` driven by Playwright (never downloaded); without it
the tests skip, or fail under CI=true. Screenshots go to ``test-artifacts/screenshots/``;
a failed test leaves ``test-artifacts/failures/<test>.png`` and ``.log`` (the page's
console, uncaught errors and every answer of 400 or more) for a failure seen once.
The live system is in :mod:`tests.browser.system`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from mmlw.registry.mlflow_registry import MlflowRegistry
from tests.browser.system import LiveSystem, live_system, log_in, system_settings
from tests.conftest import unavailable

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
FAILURES = ARTIFACTS / "failures"
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keeps each phase's report on the test, so ``page`` can tell that its test failed."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    return report


def require_chromium() -> None:
    """Skip (locally) or fail (CI=true) without Debian's chromium."""
    if CHROMIUM.is_file():
        return
    unavailable(f"{CHROMIUM} not found (apt-get install chromium)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # as long as the pages' own waits (set_default_timeout)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (own cookies and session storage) and page, 1400x900;
    logged in to the dashboard of the test's ``system``, when it has one."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    the_page = context.new_page()
    the_page.set_default_timeout(30_000)
    events: list[str] = []
    the_page.on("console", lambda m: events.append(f"console {m.type}: {m.text}"))
    the_page.on("pageerror", lambda e: events.append(f"page error: {e}"))
    the_page.on(
        "response",
        lambda r: (
            events.append(f"{r.status} {r.request.method} {r.url}") if r.status >= 400 else None
        ),
    )
    if "system" in request.fixturenames:
        log_in(the_page, request.getfixturevalue("system"))
    yield the_page
    call = request.node.stash.get(REPORTS, {}).get("call")
    if call is not None and call.failed:
        _keep_failure(the_page, request.node.name, events)
    context.close()


def _keep_failure(page: Any, name: str, events: list[str]) -> None:
    stem = re.sub(r"[^\w.-]+", "_", name)[:120]
    try:
        screenshot(page, stem, into=FAILURES)
    except Exception as exc:  # a page that cannot be drawn still leaves its log
        events.append(f"no screenshot: {exc}")
    (FAILURES / f"{stem}.log").write_text("\n".join([f"url: {page.url}", *events]) + "\n")


def screenshot(page: Any, name: str, *, into: Path = SCREENSHOTS) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    path = into / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="module")
def system_factory(
    tmp_path_factory: pytest.TempPathFactory, tracking_uri: str, registry: MlflowRegistry
) -> Callable[[], AbstractContextManager[LiveSystem]]:
    # ``registry`` makes sure the session's MLflow store and experiment exist
    def build() -> AbstractContextManager[LiveSystem]:
        return live_system(system_settings(tmp_path_factory.mktemp("system"), tracking_uri))

    return build
