"""How a job ended: its final state and reason, from what its files and processes said."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import states

_ENDS = (states.SUCCEEDED, states.FAILED, states.STOPPED)


@dataclass(frozen=True)
class Ending:
    """What is known when a job's runner (or an interactive run's kernel) has ended."""

    state: str  # the job's state when it ended (running, paused, stopping)
    reason: str | None  # the state's reason ("timeout" for a timed-out stop)
    interactive: bool = False
    finished: dict[str, Any] | None = None  # the runner's ``finished`` record
    run_end: dict[str, Any] | None = None  # an interactive run's ``run_end`` event
    exit_code: int | None = None  # the runner's exit status (negative: a signal)
    ended_unobserved: bool = False  # the processes ended while no server ran
    lost: str | None = None  # the executor's reason for a job that ended without a result


def outcome(ending: Ending) -> tuple[str, str | None]:
    """The final state and its reason."""
    if ending.state == states.STOPPING and ending.reason == "timeout":
        return states.FAILED, "timeout"
    if ending.interactive:
        status = (ending.run_end or {}).get("status")
        if status in _ENDS:
            return status, (ending.run_end or {}).get("reason")
        if ending.state == states.STOPPING:
            return states.STOPPED, "stop requested"
        return states.FAILED, "the run's kernel exited without ending the run"
    status = (ending.finished or {}).get("status")
    if ending.state == states.STOPPING:
        # the notebook may have finished before it saw the stop
        if status == states.SUCCEEDED:
            return states.SUCCEEDED, None
        return states.STOPPED, ending.reason or "stop requested"
    if status in _ENDS:
        return status, (ending.finished or {}).get("reason")
    if ending.lost is not None:
        return states.FAILED, ending.lost
    if ending.ended_unobserved:
        return states.FAILED, "the job's processes ended while the server was not running"
    if ending.exit_code is not None and ending.exit_code < 0:
        return states.FAILED, f"the runner was killed by signal {-ending.exit_code}"
    if ending.exit_code is not None:
        return states.FAILED, f"the runner exited with code {ending.exit_code} without a result"
    return states.FAILED, "the runner ended without a result"
