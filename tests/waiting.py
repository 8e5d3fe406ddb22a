"""Waiting in tests for a condition the server reaches on its own time."""

from __future__ import annotations

import asyncio
import time
from typing import Any


async def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05) -> Any:
    """Await ``predicate()`` (sync or async) until truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout}s")
        await asyncio.sleep(interval)


def wait_until(predicate: Any, timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll ``predicate()`` until truthy, blocking (a test thread, or a test with no event
    loop of the server's to keep running); its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout}s")
        time.sleep(interval)


async def job_ticks(jobs: Any, count: int = 2) -> None:
    """Wait until the job service completed ``count`` more ticks (two: a whole tick ran
    after the call, so it saw whatever the test changed before)."""
    start = jobs.ticks
    await wait_for(lambda: jobs.ticks >= start + count, timeout=30)
