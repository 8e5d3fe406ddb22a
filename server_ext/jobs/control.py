"""Controlling a job: pause, resume, stop (with escalation), cancel and restart.

``ControlMixin`` is part of ``NotebenchJobService``. Pause and resume freeze and thaw the job's
process group and its active clock; stop asks the kernel through ``control.json``, which
``notebench.should_stop()`` reads, then escalates to SIGTERM and SIGKILL after the grace
periods; restart makes a new job from a stopped or failed one, resuming from its newest
checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from notebench.jobprotocol import CHECKPOINTS_DIR, CONTROL_FILE, write_json_atomic

from ..errors import bad_request, conflict
from . import states
from .jobdir import boot_id


class ControlMixin:
    """Methods of ``NotebenchJobService`` that act on a job (see the module docstring)."""

    async def control(self: Any, job_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """pause | resume | stop | cancel | restart; 409 with the state when not allowed."""
        if action not in states.ACTIONS:
            raise bad_request(f"unknown action {action!r}: one of "
                              f"{', '.join(states.ACTIONS)}", "invalid_action")
        self._require_writable()
        if action == "restart":
            return await self.restart(job_id, body)
        async with self._lock(job_id):
            row = await self.get_row(job_id)
            state = row["state"]
            if not states.action_allowed(action, state):
                raise conflict(f"cannot {action} a job that is {state}", "invalid_transition",
                               state=state, action=action)
            if row["kind"] == "interactive" and action in ("pause", "resume"):
                raise conflict("an interactive run cannot be paused: it runs in a notebook "
                               "kernel that notebench does not own", "invalid_transition",
                               state=state, action=action)
            if action == "cancel":
                await self._set_state(job_id, states.CANCELLED, "cancelled before it ran",
                                      ended=time.time())
            elif action == "pause":
                await self._pause(row)
            elif action == "resume":
                await self._resume(row)
            elif action == "stop":
                await self._begin_stop(row, "stop requested")
        self._schedule_soon()
        return await self.get_job(job_id)

    async def _pause(self: Any, row: dict[str, Any]) -> None:
        job_id = row["id"]
        active = self._active.get(job_id)
        count = await asyncio.to_thread(self.executor.pause, job_id)
        if active is not None:
            active.clock.pause()
        accumulated = active.clock.accumulated if active else row["active_seconds"]
        await self._set_state(job_id, states.PAUSED, None, active_seconds=accumulated,
                              segment_start=None)
        self._lifecycle(logging.INFO, job_id, f"job {job_id} paused ({count} processes frozen)")

    async def _resume(self: Any, row: dict[str, Any]) -> None:
        job_id = row["id"]
        active = self._active.get(job_id)
        await asyncio.to_thread(self.executor.resume, job_id)
        if active is not None:
            active.clock.resume()
        await self._set_state(job_id, states.RUNNING, None,
                              segment_start=active.clock.segment_start if active else None,
                              boot_id=boot_id())
        self._lifecycle(logging.INFO, job_id, f"job {job_id} resumed")

    async def _begin_stop(self: Any, row: dict[str, Any], reason: str) -> None:
        """Ask the kernel to stop (``control.json``), then escalate after the grace."""
        job_id = row["id"]
        job_dir = Path(row["job_dir"])
        now = time.time()
        await asyncio.to_thread(write_json_atomic, job_dir / CONTROL_FILE,
                                {"stop": True, "requested_at": now, "reason": reason})
        was_paused = row["state"] == states.PAUSED
        active = self._active.get(job_id)
        if was_paused and row["kind"] != "interactive":
            await asyncio.to_thread(self.executor.resume, job_id)
        if active is not None:
            active.clock.resume()
        await self._set_state(job_id, states.STOPPING, reason, stop_requested=now)
        self._lifecycle(logging.INFO, job_id, f"job {job_id} stopping ({reason})")
        if row["kind"] != "interactive" and active is not None:
            active.escalation = self._spawn(self._escalate(job_id, self.stop_grace_seconds))

    async def _escalate(self: Any, job_id: str, grace: float) -> None:
        """SIGTERM after the grace, SIGKILL after ``kill_grace_seconds`` more."""
        await asyncio.sleep(max(0.0, grace))
        if not await asyncio.to_thread(self.executor.is_running, job_id):
            return
        self._lifecycle(logging.WARNING, job_id,
                        f"job {job_id} did not stop within {grace:g}s: SIGTERM")
        await asyncio.to_thread(self.executor.terminate, job_id)
        await asyncio.sleep(max(0.0, self.kill_grace_seconds))
        if await asyncio.to_thread(self.executor.is_running, job_id):
            self._lifecycle(logging.WARNING, job_id, f"job {job_id} ignored SIGTERM: SIGKILL")
            await asyncio.to_thread(self.executor.kill, job_id)

    async def restart(self: Any, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new job from a stopped or failed one, resuming from its last checkpoint."""
        parent = await self.get_row(job_id)
        if not states.action_allowed("restart", parent["state"]):
            raise conflict(f"cannot restart a job that is {parent['state']}: only stopped or "
                           "failed jobs restart", "invalid_transition", state=parent["state"],
                           action="restart")
        if parent["kind"] != "papermill":
            raise conflict("an interactive run cannot be restarted", "invalid_transition",
                           state=parent["state"], action="restart")
        source = await self._clone_source(parent, "restarted")
        options = self._derived_options(parent, body)
        checkpoint = await self._last_checkpoint(parent)
        return await self._create(source, options, template=parent["template"], parent=parent,
                                  resume_from=checkpoint)

    async def _last_checkpoint(self: Any, row: dict[str, Any]) -> str | None:
        job_dir = Path(row["job_dir"])
        recorded = await self.checkpoints(row["id"])

        def newest() -> str | None:
            for record in reversed(recorded):
                path = (job_dir / record["path"]).resolve()
                if path.is_file() and path.is_relative_to(job_dir.resolve()):
                    return str(path)
            folder = job_dir / CHECKPOINTS_DIR
            found = [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                     ] if folder.is_dir() else []
            return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None

        return await asyncio.to_thread(newest)
