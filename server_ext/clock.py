"""The clock the server's timers read: the system's, or a manual one that tests move.

Services that measure time (the job service's tick, timeouts, stall detection and pause
clock; the monitoring sampler's schedule) read ``monotonic()`` and ``time()`` from a
``Clock`` they are given, the ``SYSTEM_CLOCK`` by default. ``ManualClock`` moves only
when ``advance`` is called, so time-based behaviour can be checked without waiting.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

#: how often ``ManualClock.wait_until`` looks at its event (setting one does not wake it)
_EVENT_POLL_SECONDS = 0.01


class Clock(Protocol):
    """Monotonic and wall-clock seconds, and waiting for a monotonic deadline."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def wait_until(self, event: threading.Event, deadline: float) -> bool:
        """Block until ``event`` is set or ``monotonic()`` reaches ``deadline``;
        whether the event is set."""
        ...


class SystemClock:
    """``time.monotonic`` and ``time.time``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def wait_until(self, event: threading.Event, deadline: float) -> bool:
        return event.wait(max(0.0, deadline - time.monotonic()))


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that stands still until ``advance``; its wall time moves with it.

    Thread-safe: a thread in ``wait_until`` wakes when the clock reaches its deadline.
    """

    def __init__(self, start: float = 1000.0, wall: float | None = None) -> None:
        self._now = float(start)
        self._wall_offset = (time.time() if wall is None else float(wall)) - self._now
        self._moved = threading.Condition()

    def monotonic(self) -> float:
        with self._moved:
            return self._now

    def time(self) -> float:
        return self.monotonic() + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward (never back) by ``seconds``."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._moved:
            self._now += seconds
            self._moved.notify_all()

    def wait_until(self, event: threading.Event, deadline: float) -> bool:
        with self._moved:
            while not event.is_set() and self._now < deadline:
                self._moved.wait(_EVENT_POLL_SECONDS)
        return event.is_set()
