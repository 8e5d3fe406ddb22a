"""The injectable clock: the manual clock tests move, and a job's active clock on it."""

from __future__ import annotations

import threading

import pytest

from notebench.server.clock import SYSTEM_CLOCK, ManualClock
from notebench.server.jobs.live import ActiveClock


def test_a_manual_clock_moves_only_when_advanced():
    clock = ManualClock(start=10.0, wall=1000.0)
    assert (clock.monotonic(), clock.time()) == (10.0, 1000.0)
    clock.advance(2.5)
    assert (clock.monotonic(), clock.time()) == (12.5, 1002.5)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_waiting_on_a_manual_clock_ends_at_the_deadline_or_the_event():
    clock = ManualClock(start=0.0)
    stop = threading.Event()
    woke: list[tuple[bool, float]] = []
    waiter = threading.Thread(target=lambda: woke.append(
        (clock.wait_until(stop, 5.0), clock.monotonic())))
    waiter.start()
    clock.advance(4.0)
    waiter.join(0.1)
    assert waiter.is_alive()  # 4 of 5 seconds: still waiting
    clock.advance(1.0)
    waiter.join(10)
    assert woke == [(False, 5.0)]
    stop.set()
    assert clock.wait_until(stop, 1e9) is True
    assert SYSTEM_CLOCK.wait_until(threading.Event(), SYSTEM_CLOCK.monotonic()) is False


def test_the_active_clock_excludes_paused_time():
    clock = ManualClock()
    active = ActiveClock(source=clock)
    assert active.seconds() == 0.0  # not started
    active.resume()
    clock.advance(2.0)
    active.pause()
    clock.advance(3600.0)
    assert active.seconds() == 2.0 and active.accumulated == 2.0
    active.resume()
    active.resume()  # resuming a running clock changes nothing
    clock.advance(1.5)
    assert active.seconds() == 3.5
