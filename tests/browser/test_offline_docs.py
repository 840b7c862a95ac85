"""``/docs`` and ``/redoc`` render in headless Chromium with every non-local request aborted:
Swagger UI and ReDoc come from the API's own ``/docs-assets``, never from a CDN."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import SCREENSHOTS, screenshot
from tests.browser.system import LiveSystem

# its module/session fixture is started once, on one xdist worker (--dist loadgroup)
pytestmark = pytest.mark.xdist_group("browser-docs")

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
KNOWN_PATH = "/api/v1/machines"


@pytest.fixture(scope="module")
def system(
    system_factory: Callable[[], AbstractContextManager[LiveSystem]],
) -> Iterator[LiveSystem]:
    with system_factory() as live:
        yield live


def offline(page: Any) -> list[str]:
    """Abort every request to a host other than loopback; the list of those aborted."""
    blocked: list[str] = []

    def handle(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    page.route("**/*", handle)
    return blocked


def test_swagger_ui_renders_the_operations_offline(system: LiveSystem, page: Any) -> None:
    blocked = offline(page)
    page.goto(f"{system.api_url}/docs")
    page.locator(".opblock").first.wait_for(state="visible")
    path = page.locator(f'.opblock-summary-path[data-path="{KNOWN_PATH}"]').first
    path.wait_for(state="visible")
    assert KNOWN_PATH in path.inner_text().replace("\u200b", "")
    assert page.locator(".opblock").count() > 10
    screenshot(page, "offline-docs-swagger")
    assert blocked == []


def test_redoc_renders_the_operations_offline(system: LiveSystem, page: Any) -> None:
    blocked = offline(page)
    page.goto(f"{system.api_url}/redoc")
    page.locator("h1", has_text="MMLW").first.wait_for(state="visible")
    operation = page.locator('[data-section-id="operation/list_machines_api_v1_machines_get"]')
    operation.first.wait_for(state="attached")
    assert KNOWN_PATH in operation.first.inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)  # the first screen: the page is ~40k px
    page.screenshot(path=str(SCREENSHOTS / "offline-docs-redoc.png"))
    assert blocked == []
