"""``TaskSet``: background tasks a service starts and must not lose track of.

A task spawned here is kept (so it is not collected while it runs), cancelled when the
service stops, and can be awaited as a whole (``settle``) by whoever needs every
follow-up done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TaskSet:
    """The running background tasks of one service (event loop only)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def settle(self) -> None:
        """Wait until no task is left, including those the finished ones started."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


#: clean-ups that outlive the request that started them (a handler that ends before its
#: streamed body's sink is released); kept until done
DETACHED = TaskSet()
