"""``JobControl``: pause, resume, stop (with escalation) and cancel a job.

Pause and resume freeze and thaw the job's process group (through the executor) and its
active clock; stop asks the kernel through ``control.json``, which
``notebench.should_stop()`` reads, and has the supervisor escalate to SIGTERM and SIGKILL
after the grace periods; a timeout stops the same way. Restart makes a new job, so the
runs catalogue does it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import CONTROL_FILE, write_json_atomic

from ..errors import bad_request, conflict
from . import states
from .jobdir import boot_id

if TYPE_CHECKING:
    from .repository import JobRepository
    from .supervisor import JobSupervisor
    from .transitions import JobEvents


class JobControl:
    """Actions on a queued or live job (see the module docstring)."""

    def __init__(self, *, supervisor: JobSupervisor, repository: JobRepository,
                 events: JobEvents, stop_grace_seconds: float,
                 on_slot_free: Callable[[], None]) -> None:
        self.supervisor = supervisor
        self.repository = repository
        self.events = events
        self.stop_grace_seconds = stop_grace_seconds
        self.on_slot_free = on_slot_free

    @staticmethod
    def check_action(action: str) -> None:
        """400 ``invalid_action`` unless ``action`` is one of ``states.ACTIONS``."""
        if action not in states.ACTIONS:
            raise bad_request(f"unknown action {action!r}: one of "
                              f"{', '.join(states.ACTIONS)}", "invalid_action")

    async def act(self, job_id: str, action: str) -> None:
        """pause | resume | stop | cancel; 409 with the state when not allowed."""
        self.check_action(action)
        async with self.supervisor.lock(job_id):
            row = await self.repository.row(job_id)
            state = row["state"]
            if not states.action_allowed(action, state):
                raise conflict(f"cannot {action} a job that is {state}", "invalid_transition",
                               state=state, action=action)
            if row["kind"] == "interactive" and action in ("pause", "resume"):
                raise conflict("an interactive run cannot be paused: it runs in a notebook "
                               "kernel that notebench does not own", "invalid_transition",
                               state=state, action=action)
            if action == "cancel":
                await self.events.set_state(job_id, states.CANCELLED,
                                            "cancelled before it ran", ended=time.time())
            elif action == "pause":
                await self._pause(row)
            elif action == "resume":
                await self._resume(row)
            elif action == "stop":
                await self.begin_stop(row, "stop requested")
        self.on_slot_free()

    async def stop_for_timeout(self, job_id: str) -> None:
        """The job ran past its timeout (the supervisor's tick noticed): stop it."""
        async with self.supervisor.lock(job_id):
            row = await self.repository.row(job_id)
            if row["state"] not in (states.RUNNING, states.PAUSED):
                return
            self.events.lifecycle(logging.WARNING, job_id,
                                  f"job {job_id} ran past its timeout of {row['timeout']:g}s")
            await self.begin_stop(row, "timeout")

    async def _pause(self, row: dict[str, Any]) -> None:
        job_id = row["id"]
        job = self.supervisor.live.get(job_id)
        count = await asyncio.to_thread(self.supervisor.executor.pause, job_id)
        if job is not None:
            job.clock.pause()
        accumulated = job.clock.accumulated if job else row["active_seconds"]
        await self.events.set_state(job_id, states.PAUSED, None, active_seconds=accumulated,
                                    segment_start=None)
        self.events.lifecycle(logging.INFO, job_id,
                              f"job {job_id} paused ({count} processes frozen)")

    async def _resume(self, row: dict[str, Any]) -> None:
        job_id = row["id"]
        job = self.supervisor.live.get(job_id)
        await asyncio.to_thread(self.supervisor.executor.resume, job_id)
        if job is not None:
            job.clock.resume()
        await self.events.set_state(job_id, states.RUNNING, None,
                                    segment_start=job.clock.segment_start if job else None,
                                    boot_id=boot_id())
        self.events.lifecycle(logging.INFO, job_id, f"job {job_id} resumed")

    async def begin_stop(self, row: dict[str, Any], reason: str) -> None:
        """Ask the kernel to stop (``control.json``), then escalate after the grace."""
        job_id = row["id"]
        now = time.time()
        await asyncio.to_thread(write_json_atomic, Path(row["job_dir"]) / CONTROL_FILE,
                                {"stop": True, "requested_at": now, "reason": reason})
        job = self.supervisor.live.get(job_id)
        if row["state"] == states.PAUSED and row["kind"] != "interactive":
            await asyncio.to_thread(self.supervisor.executor.resume, job_id)
        if job is not None:
            job.clock.resume()
        await self.events.set_state(job_id, states.STOPPING, reason, stop_requested=now)
        self.events.lifecycle(logging.INFO, job_id, f"job {job_id} stopping ({reason})")
        if job is not None:
            self.supervisor.escalate_later(job, self.stop_grace_seconds)
