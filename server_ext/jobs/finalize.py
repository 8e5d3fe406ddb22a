"""The end of a job: noticed, its files read to the end, its outcome decided, its outputs kept.

The ``Finisher`` does it for the supervisor. A job ends when its runner process exits (the
executor's ``watch`` says so at once; the tick's liveness check is the fallback, e.g. for
executors that cannot watch) or when an interactive run reports its end. Then, under the
job's lock: the tailer reads the job's files to their end, anything left of the job is
killed, the outcome is decided, known secrets are scrubbed from the job's text files,
``metrics.csv`` is written and the job's row takes its final state; its files are
registered as assets and its model linked afterwards. A job lost with its worker that
allows retries is then submitted again, as a restart from its newest checkpoint.

Nothing of this may stall the event loop, however many points the job stored: the CSV is
written by a subprocess when the job has more than ``EXPORT_IN_PROCESS_POINTS`` points
(Python code formatting a million rows in a thread of the server competes with the loop
for the GIL for seconds), else in a thread, a batch of rows at a time.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import METRICS_CSV

from ..errors import ApiError
from . import artifacts as files
from . import states
from .outcome import Ending, outcome
from .registration import register_outputs
from .tidy import dir_size

if TYPE_CHECKING:
    from ..seams import AssetsView
    from ..tasks import TaskSet
    from .executor import Executor
    from .live import LiveJobs
    from .repository import JobRepository
    from .supervisor import JobSupervisor
    from .transitions import JobEvents

log = logging.getLogger("notebench.jobs")

#: above this many points, ``metrics.csv`` is written by a subprocess
EXPORT_IN_PROCESS_POINTS = 100_000


class Finisher:
    """The end of a live job (see the module docstring)."""

    def __init__(self, *, supervisor: JobSupervisor, repository: JobRepository,
                 events: JobEvents, tasks: TaskSet, assets: AssetsView | None,
                 on_slot_free: Callable[[], None],
                 resubmit: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]] | None
                 = None) -> None:
        self.supervisor = supervisor
        self.repository = repository
        self.events = events
        self.tasks = tasks
        self.assets = assets
        self.on_slot_free = on_slot_free
        self.resubmit = resubmit

    @property
    def live(self) -> LiveJobs:
        return self.supervisor.live

    @property
    def executor(self) -> Executor:
        return self.supervisor.executor

    async def finalize(self, job_id: str) -> None:
        """The runner (or run) ended: read the rest, decide the outcome, leave no process."""
        try:
            async with self.supervisor.lock(job_id):
                await self._finalize_locked(job_id)
        except Exception:
            log.exception("finishing job %s failed", job_id)
            job = self.live.get(job_id)
            if job is not None:
                job.finalizing = False
        self.on_slot_free()

    async def _finalize_locked(self, job_id: str) -> None:
        job = self.live.get(job_id)
        if job is None:
            return
        if job.escalation is not None:
            job.escalation.cancel()
        followed = await asyncio.to_thread(self.supervisor.tailer.drain, job_id)
        await self.repository.flush()  # what the drain queued is committed
        row = await self.repository.row(job_id)
        if job.papermill:
            await asyncio.to_thread(self.executor.kill, job_id)  # whatever is left of it
        # off the loop: a remote executor fetches the task's result over the network
        exit_code, lost = (await asyncio.to_thread(self._result_of, job_id) if job.papermill
                           else (None, None))
        state, reason = outcome(Ending(
            row["state"], row["reason"], interactive=not job.papermill,
            finished=followed.finished if followed else None,
            run_end=followed.run_end if followed else None, exit_code=exit_code,
            ended_unobserved=job.ended_unobserved, lost=lost))
        job.clock.pause()
        latest = dict(followed.latest) if followed else row["latest_metrics"]
        job_dir = Path(row["job_dir"])
        scrubbed = await asyncio.to_thread(files.scrub_outputs, job_dir)
        if scrubbed:
            log.warning("job %s: secrets scrubbed from %s", job_id, ", ".join(scrubbed))
        await self._export_metrics(job_id, job_dir)
        listing = await asyncio.to_thread(files.list_files, job_dir)
        fields: dict[str, Any] = {
            "ended": time.time(), "active_seconds": job.clock.accumulated,
            "segment_start": None, "final_metrics": latest, "latest_metrics": latest,
            "artifact_count": len(listing), "exit_code": exit_code,
            "last_metric_active": job.clock.at_last_metric,
            "disk_bytes": await asyncio.to_thread(dir_size, job_dir),
        }
        if followed is not None:
            fields["progress"] = dict(followed.progress)
            fields["processes"] = self.executor.processes(job_id) or dict(followed.processes)
            if followed.error is not None:
                fields["error"] = followed.error
        self.supervisor.retire(job_id)
        if row["state"] != state and not states.can_move(row["state"], state):
            state = states.FAILED  # a safety net: the transition table has the last word
        await self.events.set_state(job_id, state, reason, **fields)
        level = logging.INFO if state in (states.SUCCEEDED, states.STOPPED) else logging.ERROR
        self.events.lifecycle(level, job_id, f"job {job_id} {state}" + (f": {reason}" if reason
                                                                          else ""))
        self.tasks.spawn(self._register_outputs(job_id))
        if (state, reason) == (states.FAILED, self.executor.WORKER_LOST) and row["retries"]:
            self.tasks.spawn(self._retry(job_id, row["retries"]))

    async def _retry(self, job_id: str, retries: int) -> None:
        """A job lost with its worker that allows retries: submitted again as a new job
        resuming from its newest checkpoint (a restart), with one retry fewer."""
        if self.resubmit is None:
            return
        try:
            job = await self.resubmit(job_id, {"retries": retries - 1})
        except ApiError as exc:
            self.events.lifecycle(logging.ERROR, job_id, f"job {job_id} was lost with its "
                                  f"worker and could not be submitted again: {exc.message}")
            return
        left = retries - 1
        self.events.lifecycle(
            logging.WARNING, job_id, f"job {job_id} was lost with its worker: submitted "
            f"again as job {job['id']} ({left} {'retry' if left == 1 else 'retries'} left)")
        self.events.publish(job_id, "retried", {"job_id": job_id, "retry_id": job["id"],
                                                "retries_left": left})

    def _result_of(self, job_id: str) -> tuple[int | None, str | None]:
        """The runner's exit code and the executor's reason for a lost job (blocking)."""
        return self.executor.exit_code(job_id), self.executor.loss(job_id)

    async def _export_metrics(self, job_id: str, job_dir: Path) -> None:
        """``metrics.csv`` in the job directory (unless the kernel wrote one)."""
        if (job_dir / METRICS_CSV).exists():
            return
        points = sum((await self.repository.metric_counts(job_id)).values())
        try:
            if points <= EXPORT_IN_PROCESS_POINTS:
                await self.repository.write_points(
                    job_id, lambda rows: files.write_export(job_dir, rows))
                return
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "notebench.server.jobs.export",
                str(self.repository.path), job_id, str(job_dir),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE)
            _out, err = await process.communicate()
            if process.returncode != 0:
                log.warning("job %s: exporting its metrics failed: %s", job_id,
                            err.decode(errors="replace")[-500:])
        except OSError as exc:
            log.warning("job %s: exporting its metrics failed: %s", job_id, exc)

    async def _register_outputs(self, job_id: str) -> None:
        """Register the job's files and link its final model (when the registry exists)."""
        if self.assets is None:
            return
        try:
            row = await self.repository.row(job_id)
            model = await register_outputs(self.assets, row,
                                           await self.repository.checkpoints(job_id))
        except Exception:
            log.exception("registering the outputs of job %s failed", job_id)
            return
        if model is None:
            return
        await self.repository.update(job_id, model=model, updated=time.time())
        self.events.publish(job_id, "model", {"job_id": job_id, "model": model})
