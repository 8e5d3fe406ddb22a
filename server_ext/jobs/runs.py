"""Working with runs: compare, sweeps, clones, editing, the trash, retention, ETA.

``RunsMixin`` is part of ``NotebenchJobService`` (its configuration traits are declared there);
it keeps these operations out of the core of submission, control and finalization.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import JOBS_TOPIC, NOTEBOOK, job_topic

from ..errors import ApiError, bad_request, conflict, not_found
from . import states
from . import store as jobstore
from .compare import LAYOUTS, compare_table, runs_metrics_json
from .params import ParameterError, check_values
from .registration import forget_artifacts, register_artifacts
from .submission import requested_resources, submission_options
from .sweeps import combination_label, expand_grid, new_sweep_id
from .templates import read_notebook
from .tidy import dir_size, move_to_trash, purge_slot, restore_from_trash, trash_usage

if TYPE_CHECKING:
    from .service import Active

log = logging.getLogger("notebench.jobs")

MAX_COMPARE = 200
MAX_NOTES = 20_000
RATE_WINDOW_SECONDS = 120.0
DISK_REFRESH_SECONDS = 15.0


def load_snippet(job_id: str) -> str:
    """What a person pastes into a notebook to load the model a job produced."""
    return (f'import notebench\n'
            f'state = notebench.load_model("{job_id}")  # the state dict (safetensors first)\n'
            f'# or, into a model of the same architecture:\n'
            f'# model = notebench.load_model("{job_id}", model=MyModel())')


def eta_fields(progress: dict[str, Any], samples: deque[tuple[float, int]] | None,
               active_seconds: float, paused: bool) -> dict[str, Any]:
    """``steps_per_second``, ``eta_seconds`` (active seconds left) and ``eta`` (a time)."""
    step, total = progress.get("step"), progress.get("total_steps")
    if not (isinstance(step, int) and isinstance(total, int) and total > 0 and samples):
        return {}
    oldest_t, oldest_step = samples[0]
    newest_t, newest_step = samples[-1]
    if newest_t - oldest_t <= 0 or newest_step <= oldest_step:
        return {}
    rate = (newest_step - oldest_step) / (newest_t - oldest_t)
    remaining = max(0, total - step - 1) / rate
    # the last sample was taken at ``newest_t`` active seconds: count what passed since
    left = max(0.0, remaining - max(0.0, active_seconds - newest_t))
    return {"steps_per_second": round(rate, 4), "eta_seconds": round(left, 1),
            "eta": None if paused else round(time.time() + left, 1)}


class RunsMixin:
    """Methods of ``NotebenchJobService`` for working with runs (see the module docstring)."""

    # -- ETA and disk use (from the tick) ---

    def _note_rate(self: Any, active: Active, followed: Any) -> None:
        if followed is None:
            return
        step = followed.progress.get("step")
        if not isinstance(step, int):
            return
        samples = active.extra.setdefault("rate", deque())
        now = active.clock.seconds()
        if samples and samples[-1][1] == step:
            return
        if samples and step < samples[-1][1]:
            samples.clear()  # the steps started over
        samples.append((now, step))
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW_SECONDS:
            samples.popleft()

    def _eta(self: Any, job_id: str, progress: dict[str, Any], state: str) -> dict[str, Any]:
        active = self._active.get(job_id)
        if active is None or state not in (states.RUNNING, states.PAUSED):
            return {}
        return eta_fields(progress, active.extra.get("rate"), active.clock.seconds(),
                          state == states.PAUSED)

    def _disk_stale(self: Any, job_id: str, known: int | None) -> bool:
        """Whether a GET of the job should measure its directory again."""
        if known is None:
            return True
        if job_id not in self._active:
            return False  # measured when it ended; nothing writes there any more
        return time.monotonic() - self._disk_measured.get(job_id, 0.0) > 2.0

    async def _measure_disk(self: Any, job_id: str, job_dir: Path) -> int:
        self._disk_measured[job_id] = time.monotonic()
        size = await asyncio.to_thread(dir_size, job_dir)
        await self.store.write(lambda conn: jobstore.update_job(conn, job_id, disk_bytes=size))
        return size

    async def _refresh_disk(self: Any) -> None:
        """Disk use of active jobs, every ``DISK_REFRESH_SECONDS``."""
        now = time.monotonic()
        if now - self._disk_checked < DISK_REFRESH_SECONDS:
            return
        self._disk_checked = now
        for active in list(self._active.values()):
            try:
                await self._measure_disk(active.job_id, active.job_dir)
            except Exception:
                log.debug("measuring job %s failed", active.job_id, exc_info=True)

    # -- compare ---

    async def _rows_of(self: Any, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            raise bad_request("name the runs: ?ids=<id>,<id>", "missing_ids")
        ids = list(dict.fromkeys(ids))
        if len(ids) > MAX_COMPARE:
            raise bad_request(f"at most {MAX_COMPARE} runs at once", "invalid_parameter")
        found = await self.store.read(lambda conn: jobstore.jobs_by_ids(conn, ids))
        missing = [i for i in ids if i not in found]
        if missing:
            raise not_found(f"no job {missing[0]}", "unknown_job")
        return [found[i] for i in ids]

    async def compare(self: Any, ids: list[str], modes: dict[str, str] | None = None
                      ) -> dict[str, Any]:
        rows = await self._rows_of(ids)
        jobs = [self._public(r) for r in rows]
        return await self.store.read(lambda conn: compare_table(conn, jobs, modes))

    async def runs_metrics_json(self: Any, ids: list[str], names: list[str] | None,
                                max_points: int, layout: str = "buckets") -> bytes:
        """The runs' series on one step axis, encoded (on a reader thread)."""
        if layout not in LAYOUTS:
            raise bad_request(f"layout must be one of {', '.join(LAYOUTS)}",
                              "invalid_parameter")
        rows = await self._rows_of(ids)
        return await self.store.read(lambda conn: runs_metrics_json(
            conn, self.series_cache, rows, names, max_points, layout))

    # -- clones and sweeps ---

    def _derived_options(self: Any, parent: dict[str, Any], body: dict[str, Any]) -> Any:
        """Submission options of a job made from ``parent`` (restart, clone with edits):
        the parent's as given, with what ``body`` overrides."""
        overrides = body.get("parameters") or {}
        if not isinstance(overrides, dict):
            raise bad_request("'parameters' must be an object", "invalid_parameters")
        return submission_options({
            "parameters": {**parent["parameters"], **overrides},
            "resources": body.get("resources", requested_resources(parent["resources"])),
            "priority": body.get("priority", parent["priority"]),
            "name": body.get("name", parent["name"]),
            "tags": body.get("tags", parent["tags"]),
            "timeout": body.get("timeout", parent["timeout"]),
            "kernel_name": body.get("kernel_name", parent["kernel_name"]),
        }, self.default_timeout)

    async def _clone_source(self: Any, parent: dict[str, Any], action: str) -> Any:
        if parent["kind"] != "papermill":
            raise conflict(f"an interactive run cannot be {action}: it has no notebook "
                           "snapshot", "invalid_transition", state=parent["state"],
                           action=action)
        if parent["trashed_at"] is not None:
            raise conflict(f"job {parent['id']} is in the trash: restore it first",
                           "in_trash")
        snapshot = Path(parent["job_dir"]) / NOTEBOOK
        source = await asyncio.to_thread(read_notebook, snapshot,
                                         parent["notebook_path"] or NOTEBOOK)
        source.display_path = parent["notebook_path"] or NOTEBOOK
        return source

    async def clone(self: Any, body: dict[str, Any]) -> dict[str, Any]:
        """``from_job``: the parent's snapshot and given parameters, with overrides."""
        parent_id = body.get("from_job")
        if not isinstance(parent_id, str):
            raise bad_request("'from_job' must be a job id", "invalid_request")
        try:
            parent = await self.get_row(parent_id)
        except ApiError as exc:
            if exc.status == 404:
                raise bad_request(f"no job {parent_id} to clone", "unknown_job") from None
            raise
        source = await self._clone_source(parent, "cloned")
        options = self._derived_options(parent, body)
        return await self._create(source, options, template=parent["template"],
                                  cloned_from=parent["id"])

    async def submit_sweep(self: Any, body: dict[str, Any]) -> dict[str, Any]:
        """One job per combination of ``grid``, all checked before any is queued."""
        self._require_writable()
        combos = expand_grid(body.get("grid"), self.max_sweep_jobs)
        base = {k: v for k, v in body.items() if k != "grid"}
        fixed = base.get("parameters") or {}
        if not isinstance(fixed, dict):
            raise bad_request("'parameters' must be an object", "invalid_parameters")
        if "from_job" in base:
            parent = await self.get_row(str(base["from_job"]))
            source = await self._clone_source(parent, "swept")
            fixed = {**parent["parameters"], **fixed}
            template = parent["template"]
            base.setdefault("kernel_name", parent["kernel_name"])
            base.setdefault("resources", requested_resources(parent["resources"]))
            base.setdefault("name", parent["name"])
        else:
            source, template = await self._source_of(base)
        options = submission_options({**base, "parameters": fixed}, self.default_timeout)
        problems = []
        for combo in combos:
            try:
                check_values(source.cell, {**fixed, **combo})
            except ParameterError as exc:
                problems += [{**p, "combination": combo} for p in exc.problems]
        if source.cell.problems:
            raise bad_request("the parameters cell cannot be used: "
                              + "; ".join(source.cell.problems), "invalid_notebook")
        if problems:
            raise bad_request(f"invalid parameters: {problems[0].get('message', '')}",
                              "invalid_parameters", problems=problems)
        sweep_id = new_sweep_id()
        name = options.get("name") or template or Path(source.display_path).stem
        now = time.time()
        spec = {"template": template, "notebook": source.display_path, "grid": body["grid"],
                "parameters": fixed, "priority": options["priority"],
                "tags": options["tags"]}
        await self.store.write(lambda conn: jobstore.insert_sweep(
            conn, {"id": sweep_id, "name": name, "created": now, "spec": spec}))
        jobs = []
        for combo in combos:
            job_options = {**options, "parameters": {**fixed, **combo},
                           "name": f"{name} {combination_label(combo)}"[:200]}
            jobs.append(await self._create(source, job_options, template=template,
                                           sweep_id=sweep_id))
        self.bus.publish(JOBS_TOPIC, "sweep", {"sweep_id": sweep_id,
                                                    "jobs": [j["id"] for j in jobs]})
        return {**await self.get_sweep(sweep_id, table=False), "jobs": jobs}

    async def get_sweep(self: Any, sweep_id: str, *, table: bool = True) -> dict[str, Any]:
        sweep = await self.store.read(lambda conn: jobstore.get_sweep(conn, sweep_id))
        if sweep is None:
            raise not_found(f"no sweep {sweep_id}", "unknown_sweep")
        ids = await self.store.read(lambda conn: jobstore.sweep_job_ids(conn, sweep_id))
        counts = await self.store.read(lambda conn: jobstore.sweep_states(conn, [sweep_id]))
        out = {**_sweep_public(sweep, counts.get(sweep_id, {})), "job_ids": ids}
        if table:
            out["compare"] = (await self.compare(ids)) if ids else None
        return out

    async def list_sweeps(self: Any, limit: int, offset: int) -> dict[str, Any]:
        sweeps, total = await self.store.read(
            lambda conn: jobstore.list_sweeps(conn, limit, offset))
        ids = [s["id"] for s in sweeps]
        counts = await self.store.read(lambda conn: jobstore.sweep_states(conn, ids))
        return {"sweeps": [_sweep_public(s, counts.get(s["id"], {})) for s in sweeps],
                "total": total, "limit": limit, "offset": offset}

    # -- editing ---

    async def update_job(self: Any, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PATCH``: name, notes, starred, tags (400 on anything else)."""
        self._require_writable()
        unknown = sorted(set(body) - {"name", "notes", "starred", "tags"})
        if unknown:
            raise bad_request(f"cannot change {unknown[0]!r}: only name, notes, starred and "
                              "tags", "invalid_request")
        fields: dict[str, Any] = {}
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name.strip() or len(name) > 200:
                raise bad_request("'name' must be a non-empty string of at most 200 "
                                  "characters", "invalid_request")
            fields["name"] = name.strip()
        if "notes" in body:
            notes = body["notes"]
            if not isinstance(notes, str) or len(notes) > MAX_NOTES:
                raise bad_request(f"'notes' must be a string of at most {MAX_NOTES} "
                                  "characters", "invalid_request")
            fields["notes"] = notes
        if "starred" in body:
            if not isinstance(body["starred"], bool):
                raise bad_request("'starred' must be true or false", "invalid_request")
            fields["starred"] = 1 if body["starred"] else 0
        if "tags" in body:
            tags = body["tags"]
            if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip()
                                                     and len(t) <= 64 for t in tags):
                raise bad_request("'tags' must be a list of non-empty strings (64 characters "
                                  "at most)", "invalid_request")
            fields["tags"] = list(dict.fromkeys(t.strip() for t in tags))
        async with self._lock(job_id):
            await self.get_row(job_id)
            if fields:
                fields["updated"] = time.time()
                await self.store.write(lambda conn: jobstore.update_job(conn, job_id, **fields))
        job = await self.get_job(job_id)
        self._publish_change(job, "updated")
        return job

    # -- the trash ---

    async def delete_job(self: Any, job_id: str) -> dict[str, Any]:
        """Move a job's directory to the trash; 409 while it is queued or runs."""
        self._require_writable()
        async with self._lock(job_id):
            row = await self.get_row(job_id)
            if row["trashed_at"] is not None:
                raise not_found(f"job {job_id} is already in the trash", "in_trash")
            if row["state"] not in states.TERMINAL:
                hint = "cancel" if row["state"] == states.QUEUED else "stop"
                raise conflict(f"cannot delete a job that is {row['state']}: {hint} it first",
                               "job_active", state=row["state"])
            await asyncio.to_thread(move_to_trash, self.runs_dir, job_id, Path(row["job_dir"]))
            now = time.time()
            await self.store.write(lambda conn: jobstore.update_job(
                conn, job_id, trashed_at=now, updated=now))
        self._spawn(self._artifacts_follow(job_id))
        self.series_cache.forget(job_id)
        job = await self.get_job(job_id)
        self._publish_change(job, "trashed")
        self._lifecycle(logging.INFO, job_id, f"job {job_id} moved to the trash")
        return job

    async def _artifacts_follow(self: Any, job_id: str) -> None:
        """Bring the job's artifact assets in line with where the job is now: out of the
        listing while it is in the trash, back after a restore. In the background (the
        registry may take seconds to notice files gone, and registering hashes the files);
        one at a time per job, each reading the job's state when it runs, so that a
        restore right after a trash ends with the artifacts listed."""
        assets = self.services.assets if self.services else None
        if assets is None:
            return
        async with self._lock(f"{job_id}/artifacts"):
            try:
                row = await self.get_row(job_id)
            except ApiError:
                return  # purged meanwhile
            try:
                if row["trashed_at"] is not None:
                    rel = Path(row["job_dir"]).relative_to(self.workspace.root("artifacts"))
                    await forget_artifacts(assets, job_id, rel.as_posix())
                else:
                    await register_artifacts(assets, row, await self.checkpoints(job_id))
            except Exception:
                log.exception("updating the artifact assets of job %s failed", job_id)

    async def list_trash(self: Any) -> dict[str, Any]:
        rows, total = await self.store.read(lambda conn: jobstore.list_jobs(
            conn, trashed=True, limit=10_000, sort="-updated"))
        count, size = await asyncio.to_thread(trash_usage, self.runs_dir)
        return {"items": [self._public(r) for r in rows], "total": total,
                "usage": {"jobs": count, "bytes": size},
                "retention_days": self.trash_retention_days}

    async def _trashed_row(self: Any, job_id: str) -> dict[str, Any]:
        row = await self.get_row(job_id)
        if row["trashed_at"] is None:
            raise not_found(f"job {job_id} is not in the trash", "not_in_trash")
        return row

    async def restore_job(self: Any, job_id: str) -> dict[str, Any]:
        self._require_writable()
        async with self._lock(job_id):
            row = await self._trashed_row(job_id)
            await asyncio.to_thread(restore_from_trash, self.runs_dir, job_id,
                                    Path(row["job_dir"]))
            await self.store.write(lambda conn: jobstore.update_job(
                conn, job_id, trashed_at=None, updated=time.time()))
        self._spawn(self._artifacts_follow(job_id))
        job = await self.get_job(job_id)
        self._publish_change(job, "restored")
        self._lifecycle(logging.INFO, job_id, f"job {job_id} restored from the trash")
        return job

    async def purge_job(self: Any, job_id: str) -> dict[str, Any]:
        self._require_writable()
        async with self._lock(job_id):
            row = await self._trashed_row(job_id)
            job = self._public(row)
            await asyncio.to_thread(purge_slot, self.runs_dir, job_id)
            await self.store.write(lambda conn: jobstore.delete_job_rows(conn, job_id))
        self.series_cache.forget(job_id)
        self._locks.pop(job_id, None)
        self._locks.pop(f"{job_id}/artifacts", None)
        self._disk_measured.pop(job_id, None)
        self.bus.publish(JOBS_TOPIC, "purged", {"job_id": job_id})
        self._lifecycle(logging.INFO, job_id, f"job {job_id} purged")
        return {**job, "purged": True}

    async def purge_trash(self: Any, older_than_days: float | None = None) -> dict[str, Any]:
        days = self.trash_retention_days if older_than_days is None else older_than_days
        if days < 0:
            raise bad_request("older_than_days must not be negative", "invalid_parameter")
        cutoff = time.time() - days * 86400
        rows, _ = await self.store.read(lambda conn: jobstore.list_jobs(
            conn, trashed=True, limit=100_000))
        purged = []
        for row in rows:
            if row["trashed_at"] <= cutoff:
                await self.purge_job(row["id"])
                purged.append(row["id"])
        return {"purged": purged, "older_than_days": days}

    async def apply_retention(self: Any, *, days: float | None = None,
                              trash_days: float | None = None) -> dict[str, Any]:
        """Old unstarred finished runs to the trash; old trash purged (the settings' job)."""
        days = self.retention_days if days is None else days
        trash_days = self.trash_retention_days if trash_days is None else trash_days
        trashed: list[str] = []
        if days > 0:
            cutoff = time.time() - days * 86400
            rows = await self.store.read(lambda conn: [r[0] for r in conn.execute(
                f"SELECT id FROM jobs WHERE trashed_at IS NULL AND starred = 0 AND ended "
                f"IS NOT NULL AND ended <= ? AND state IN "
                f"({','.join('?' * len(states.TERMINAL))})",
                (cutoff, *sorted(states.TERMINAL))).fetchall()])
            for job_id in rows:
                try:
                    await self.delete_job(job_id)
                    trashed.append(job_id)
                except ApiError as exc:
                    log.info("retention skipped job %s: %s", job_id, exc.message)
        purged = (await self.purge_trash(trash_days))["purged"] if trash_days > 0 else []
        if trashed or purged:
            log.info("retention: %d jobs to the trash, %d purged", len(trashed), len(purged))
        return {"trashed": trashed, "purged": purged}

    async def _retention_tick(self: Any) -> None:
        if self.workspace.read_only or self.retention_interval_seconds <= 0:
            return
        now = time.monotonic()
        if now - self._retention_checked < self.retention_interval_seconds:
            return
        self._retention_checked = now
        try:
            await self.apply_retention()
        except Exception:
            log.exception("applying the retention settings failed")

    def _publish_change(self: Any, job: dict[str, Any], kind: str) -> None:
        data = {"job_id": job["id"], "job": job}
        self.bus.publish(JOBS_TOPIC, kind, data)
        self.bus.publish(job_topic(job["id"]), kind, data)


def _sweep_public(sweep: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    spec = sweep["spec"]
    return {"id": sweep["id"], "name": sweep["name"], "created": sweep["created"],
            "template": spec.get("template"), "notebook": spec.get("notebook"),
            "grid": spec.get("grid"), "parameters": spec.get("parameters"),
            "priority": spec.get("priority"), "tags": spec.get("tags") or [],
            "states": counts, "job_count": sum(counts.values())}
