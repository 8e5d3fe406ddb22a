"""The transitions between job states and the control actions.

The states themselves, and which are final, are ``notebench.jobprotocol``'s (shared with
the kernel's client and widgets). ``queued`` → ``running`` ⇄ ``paused``;
``running``/``paused`` → ``stopping`` → ``stopped``; a job ends ``succeeded``, ``failed``
(a timeout is a failure with reason ``timeout``), ``stopped`` or ``cancelled`` (a queued
job cancelled before it ran).
"""

from __future__ import annotations

from notebench.jobprotocol import (
    ACTIVE,
    CANCELLED,
    FAILED,
    PAUSED,
    QUEUED,
    RUNNING,
    STATES,
    STOPPED,
    STOPPING,
    SUCCEEDED,
    TERMINAL,
)

__all__ = [
    "ACTIONS", "ACTIVE", "CANCELLED", "FAILED", "PAUSED", "QUEUED", "RUNNING", "STATES",
    "STOPPED", "STOPPING", "SUCCEEDED", "TERMINAL", "TRANSITIONS", "action_allowed", "can_move",
]

#: state -> the states it may move to
TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, CANCELLED, FAILED}),
    # a job that raised StopTraining on its own ends stopped without a stop request
    RUNNING: frozenset({PAUSED, STOPPING, SUCCEEDED, FAILED, STOPPED}),
    # a runner that ended just as it was frozen ends with its own outcome
    PAUSED: frozenset({RUNNING, STOPPING, FAILED, SUCCEEDED, STOPPED}),
    # a stop that came too late may still see the notebook succeed or fail first
    STOPPING: frozenset({STOPPED, FAILED, SUCCEEDED}),
    STOPPED: frozenset(),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    CANCELLED: frozenset(),
}

#: control action -> (states it applies to, the state it leads to; None: a new job)
ACTIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "pause": (frozenset({RUNNING}), PAUSED),
    "resume": (frozenset({PAUSED}), RUNNING),
    "stop": (frozenset({RUNNING, PAUSED}), STOPPING),
    "cancel": (frozenset({QUEUED}), CANCELLED),
    "restart": (frozenset({STOPPED, FAILED}), None),
}


def can_move(current: str, target: str) -> bool:
    """Whether ``current`` may move to ``target``."""
    return target in TRANSITIONS.get(current, frozenset())


def action_allowed(action: str, current: str) -> bool:
    """Whether a control action applies to a job in state ``current``."""
    spec = ACTIONS.get(action)
    return spec is not None and current in spec[0]
