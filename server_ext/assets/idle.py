"""Idle uploads: each body being received holds a ``Receiving`` ticket of the registry's
``IdleWatch``; the watch runs the ticket's own close action once it has been idle too long.
The registry owns the watch and never sees the request handlers."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable


class Receiving:
    """One body being received: when it last got bytes, and how to stop it."""

    def __init__(self, close: Callable[[], None], now: float) -> None:
        self.close = close
        self.last_activity = now

    def touch(self) -> None:
        self.last_activity = time.monotonic()


class IdleWatch:
    """The bodies being received (weakly held: a forgotten ticket just goes)."""

    def __init__(self) -> None:
        self._tickets: weakref.WeakSet[Receiving] = weakref.WeakSet()

    def __len__(self) -> int:
        return len(self._tickets)

    def start(self, close: Callable[[], None]) -> Receiving:
        """Watch a new body; ``close`` is called if it goes idle."""
        ticket = Receiving(close, time.monotonic())
        self._tickets.add(ticket)
        return ticket

    def stop(self, ticket: Receiving | None) -> None:
        if ticket is not None:
            self._tickets.discard(ticket)

    def close_idle(self, deadline: float) -> int:
        """Close (and forget) the bodies idle since before ``deadline``; how many."""
        idle = [t for t in list(self._tickets) if t.last_activity < deadline]
        for ticket in idle:
            ticket.close()  # its owner stops watching it as the connection ends
        return len(idle)
