"""For synchronous test modules (a server in a child process, Playwright's sync API):
pytest-jupyter's autouse event loop and in-process server clean-up are switched off, or
they would fight the thread's own waiting. Import both fixtures into the module or its
``conftest.py``."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> None:
    return None


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> None:
    return None
