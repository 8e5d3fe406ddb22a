"""The end of a job: noticed, its files read to the end, its outcome decided, its outputs kept.

``FinalizeMixin`` is part of ``NotebenchJobService``. A job ends when its runner process exits (the
executor's ``watch`` says so at once; the tick's liveness check is the fallback, e.g. for
executors that cannot watch) or when an interactive run reports its end. Then, under the
job's lock: the tailer reads the job's files to their end, anything left of the job is
killed, the outcome is decided, known secrets are scrubbed from the job's text files,
``metrics.csv`` is written and the job's row takes its final state; its files are
registered as assets and its model linked afterwards.

Nothing of this may stall the event loop, however many points the job stored: the CSV is
written by a subprocess when the job has more than ``EXPORT_IN_PROCESS_POINTS`` points
(Python code formatting a million rows in a thread of the server competes with the loop
for the GIL for seconds), else in a thread, a batch of rows at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import JOBS_TOPIC, METRICS_CSV, job_topic

from . import artifacts as files
from . import states
from . import store as jobstore
from .outcome import Ending, outcome
from .registration import register_outputs
from .tidy import dir_size

if TYPE_CHECKING:
    from .service import Active

log = logging.getLogger("notebench.jobs")

#: above this many points, ``metrics.csv`` is written by a subprocess
EXPORT_IN_PROCESS_POINTS = 100_000


class FinalizeMixin:
    """Methods of ``NotebenchJobService`` for the end of a job (see the module docstring)."""

    def _watch(self: Any, active: Active) -> None:
        """Have the executor say when the job's runner exits (on any thread)."""
        loop = self._loop
        if loop is None or active.kind != "papermill":
            return
        job_id = active.job_id

        def exited() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: the server is going
                loop.call_soon_threadsafe(self._job_ended, job_id)

        self.executor.watch(job_id, exited)

    def _job_ended(self: Any, job_id: str) -> None:
        """The job's processes ended (or its run said so): finalize it once (loop thread)."""
        active = self._active.get(job_id)
        if active is None or active.finalizing or not self.started:
            return
        active.finalizing = True
        self._spawn(self._finalize(job_id))

    async def _finalize(self: Any, job_id: str) -> None:
        """The runner (or run) ended: read the rest, decide the outcome, leave no process."""
        try:
            async with self._lock(job_id):
                await self._finalize_locked(job_id)
        except Exception:
            log.exception("finishing job %s failed", job_id)
            active = self._active.get(job_id)
            if active is not None:
                active.finalizing = False
        self._schedule_soon()

    async def _finalize_locked(self: Any, job_id: str) -> None:
        active = self._active.get(job_id)
        if active is None:
            return
        if active.escalation is not None:
            active.escalation.cancel()
        followed = await asyncio.to_thread(self.tailer.drain, job_id)
        await self.store.write(lambda conn: None)  # what the drain queued is committed
        row = await self.get_row(job_id)
        papermill = active.kind == "papermill"
        if papermill:
            await asyncio.to_thread(self.executor.kill, job_id)  # whatever is left of it
        exit_code = self.executor.exit_code(job_id) if papermill else None
        state, reason = outcome(Ending(
            row["state"], row["reason"], interactive=not papermill,
            finished=followed.finished if followed else None,
            run_end=followed.run_end if followed else None, exit_code=exit_code,
            ended_unobserved=bool(active.extra.get("server_down"))))
        active.clock.pause()
        latest = dict(followed.latest) if followed else row["latest_metrics"]
        job_dir = Path(row["job_dir"])
        scrubbed = await asyncio.to_thread(files.scrub_outputs, job_dir)
        if scrubbed:
            log.warning("job %s: secrets scrubbed from %s", job_id, ", ".join(scrubbed))
        await self._export_metrics(job_id, job_dir)
        listing = await asyncio.to_thread(files.list_files, job_dir)
        fields: dict[str, Any] = {
            "ended": time.time(), "active_seconds": active.clock.accumulated,
            "segment_start": None, "final_metrics": latest, "latest_metrics": latest,
            "artifact_count": len(listing), "exit_code": exit_code,
            "last_metric_active": active.clock.at_last_metric,
            "disk_bytes": await asyncio.to_thread(dir_size, job_dir),
        }
        if followed is not None:
            fields["progress"] = dict(followed.progress)
            fields["processes"] = self.executor.processes(job_id) or dict(followed.processes)
            if followed.error is not None:
                fields["error"] = followed.error
        self.tailer.unfollow(job_id)
        self.executor.forget(job_id)
        self._active.pop(job_id, None)
        if row["state"] != state and not states.can_move(row["state"], state):
            state = states.FAILED  # a safety net: the transition table has the last word
        await self._set_state(job_id, state, reason, **fields)
        level = logging.INFO if state in (states.SUCCEEDED, states.STOPPED) else logging.ERROR
        self._lifecycle(level, job_id, f"job {job_id} {state}" + (f": {reason}" if reason
                                                                      else ""))
        self._spawn(self._register_outputs(job_id))

    async def _export_metrics(self: Any, job_id: str, job_dir: Path) -> None:
        """``metrics.csv`` in the job directory (unless the kernel wrote one)."""
        if (job_dir / METRICS_CSV).exists():
            return
        points = sum((await self.store.read(
            lambda conn: jobstore.metric_names(conn, job_id))).values())
        try:
            if points <= EXPORT_IN_PROCESS_POINTS:
                await self.store.read(lambda conn: files.write_export(
                    job_dir, jobstore.metric_points(conn, job_id)))
                return
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "notebench.server.jobs.export", str(self.store.path),
                job_id, str(job_dir), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _out, err = await process.communicate()
            if process.returncode != 0:
                log.warning("job %s: exporting its metrics failed: %s", job_id,
                            err.decode(errors="replace")[-500:])
        except OSError as exc:
            log.warning("job %s: exporting its metrics failed: %s", job_id, exc)

    async def _register_outputs(self: Any, job_id: str) -> None:
        """Register the job's files and link its final model (when the registry exists)."""
        assets = self.services.assets if self.services else None
        if assets is None:
            return
        try:
            row = await self.get_row(job_id)
            model = await register_outputs(assets, row, await self.checkpoints(job_id))
        except Exception:
            log.exception("registering the outputs of job %s failed", job_id)
            return
        if model is None:
            return
        await self.store.write(lambda conn: jobstore.update_job(conn, job_id, model=model,
                                                                 updated=time.time()))
        for topic in (job_topic(job_id), JOBS_TOPIC):
            self.bus.publish(topic, "model", {"job_id": job_id, "model": model})
