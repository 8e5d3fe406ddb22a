"""Browser fixtures: one Chromium per test session, a fresh context per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.chromium import CHROMIUM, LAUNCH_ARGS, ConsoleLog, chromium_available
from tests.synchronous import jp_asyncio_loop, jp_server_cleanup  # noqa: F401


# Module-scoped, not session-scoped: while Playwright's sync API is open, this thread's event
# loop counts as running, and the (asyncio) tests collected after the browser ones would fail.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not chromium_available():
        pytest.skip("Debian's chromium is not installed (make test installs it as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_context(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def page(browser_context: Any, console: ConsoleLog) -> Any:
    page = browser_context.new_page()
    console.attach(page)
    return page
