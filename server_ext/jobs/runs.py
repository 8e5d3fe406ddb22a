"""``RunsCatalogue``: working with finished and running jobs as runs.

Compare runs (a table of parameters and metric summaries, series on one step axis),
make new jobs from old ones (clone with edits, restart from the newest checkpoint, a
sweep over a parameter grid, all checked before any is queued), and edit a job's name,
notes, star and tags.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import CHECKPOINTS_DIR, NOTEBOOK

from ..errors import ApiError, bad_request, conflict, not_found
from . import states
from .compare import LAYOUTS
from .params import ParameterError, check_values
from .submission import requested_resources, submission_options
from .sweeps import combination_label, expand_grid, new_sweep_id
from .templates import NotebookSource, read_notebook

if TYPE_CHECKING:
    from .jobqueue import JobQueue
    from .reading import JobReader
    from .repository import JobRepository
    from .supervisor import JobSupervisor
    from .transitions import JobEvents

MAX_COMPARE = 200
MAX_NOTES = 20_000


class RunsCatalogue:
    """Compare, clone, restart, sweep and edit jobs (see the module docstring)."""

    def __init__(self, *, repository: JobRepository, events: JobEvents, queue: JobQueue,
                 reader: JobReader, supervisor: JobSupervisor, default_timeout: float,
                 max_sweep_jobs: int) -> None:
        self.repository = repository
        self.events = events
        self.queue = queue
        self.reader = reader
        self.supervisor = supervisor
        self.default_timeout = default_timeout
        self.max_sweep_jobs = max_sweep_jobs

    # -- compare ---

    async def _rows_of(self, ids: list[str]) -> list[dict[str, Any]]:
        if not ids:
            raise bad_request("name the runs: ?ids=<id>,<id>", "missing_ids")
        ids = list(dict.fromkeys(ids))
        if len(ids) > MAX_COMPARE:
            raise bad_request(f"at most {MAX_COMPARE} runs at once", "invalid_parameter")
        found = await self.repository.by_ids(ids)
        missing = [i for i in ids if i not in found]
        if missing:
            raise not_found(f"no job {missing[0]}", "unknown_job")
        return [found[i] for i in ids]

    async def compare(self, ids: list[str], modes: dict[str, str] | None = None
                      ) -> dict[str, Any]:
        rows = await self._rows_of(ids)
        jobs = [self.events.presenter.public(r) for r in rows]
        return await self.repository.compare(jobs, modes)

    async def runs_metrics_json(self, ids: list[str], names: list[str] | None,
                                max_points: int, layout: str = "buckets") -> bytes:
        """The runs' series on one step axis, encoded (on a reader thread)."""
        if layout not in LAYOUTS:
            raise bad_request(f"layout must be one of {', '.join(LAYOUTS)}",
                              "invalid_parameter")
        rows = await self._rows_of(ids)
        return await self.repository.runs_metrics(rows, names, max_points, layout)

    # -- clones and sweeps ---

    def _derived_options(self, parent: dict[str, Any], body: dict[str, Any]
                         ) -> dict[str, Any]:
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
            "retries": body.get("retries", parent["retries"]),
        }, self.default_timeout)

    async def _clone_source(self, parent: dict[str, Any], action: str) -> NotebookSource:
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

    async def clone(self, body: dict[str, Any]) -> dict[str, Any]:
        """``from_job``: the parent's snapshot and given parameters, with overrides."""
        parent_id = body.get("from_job")
        if not isinstance(parent_id, str):
            raise bad_request("'from_job' must be a job id", "invalid_request")
        try:
            parent = await self.repository.row(parent_id)
        except ApiError as exc:
            if exc.status == 404:
                raise bad_request(f"no job {parent_id} to clone", "unknown_job") from None
            raise
        source = await self._clone_source(parent, "cloned")
        options = self._derived_options(parent, body)
        return await self.queue.create(source, options, template=parent["template"],
                                       cloned_from=parent["id"])

    async def restart(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A new job from a stopped or failed one, resuming from its last checkpoint."""
        parent = await self.repository.row(job_id)
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
        return await self.queue.create(source, options, template=parent["template"],
                                       parent=parent, resume_from=checkpoint)

    async def _last_checkpoint(self, row: dict[str, Any]) -> str | None:
        job_dir = Path(row["job_dir"])
        recorded = await self.repository.checkpoints(row["id"])

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

    async def submit_sweep(self, body: dict[str, Any]) -> dict[str, Any]:
        """One job per combination of ``grid``, all checked before any is queued."""
        combos = expand_grid(body.get("grid"), self.max_sweep_jobs)
        base = {k: v for k, v in body.items() if k != "grid"}
        fixed = base.get("parameters") or {}
        if not isinstance(fixed, dict):
            raise bad_request("'parameters' must be an object", "invalid_parameters")
        if "from_job" in base:
            parent = await self.repository.row(str(base["from_job"]))
            source = await self._clone_source(parent, "swept")
            fixed = {**parent["parameters"], **fixed}
            template = parent["template"]
            base.setdefault("kernel_name", parent["kernel_name"])
            base.setdefault("resources", requested_resources(parent["resources"]))
            base.setdefault("name", parent["name"])
        else:
            source, template = await self.queue.submission.source_of(base)
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
        await self.repository.insert_sweep({"id": sweep_id, "name": name, "created": now,
                                            "spec": spec})
        jobs = []
        for combo in combos:
            job_options = {**options, "parameters": {**fixed, **combo},
                           "name": f"{name} {combination_label(combo)}"[:200]}
            jobs.append(await self.queue.create(source, job_options, template=template,
                                                sweep_id=sweep_id))
        self.events.publish(None, "sweep", {"sweep_id": sweep_id,
                                            "jobs": [j["id"] for j in jobs]})
        return {**await self.get_sweep(sweep_id, table=False), "jobs": jobs}

    async def get_sweep(self, sweep_id: str, *, table: bool = True) -> dict[str, Any]:
        sweep, ids, counts = await self.repository.sweep(sweep_id)
        if sweep is None:
            raise not_found(f"no sweep {sweep_id}", "unknown_sweep")
        out = {**_sweep_public(sweep, counts), "job_ids": ids}
        if table:
            out["compare"] = (await self.compare(ids)) if ids else None
        return out

    async def list_sweeps(self, limit: int, offset: int) -> dict[str, Any]:
        sweeps, total, counts = await self.repository.sweeps_page(limit, offset)
        return {"sweeps": [_sweep_public(s, counts.get(s["id"], {})) for s in sweeps],
                "total": total, "limit": limit, "offset": offset}

    # -- editing ---

    async def update_job(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PATCH``: name, notes, starred, tags (400 on anything else)."""
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
        async with self.supervisor.lock(job_id):
            await self.repository.row(job_id)
            if fields:
                fields["updated"] = time.time()
                await self.repository.update(job_id, **fields)
        job = await self.reader.get_job(job_id)
        self.events.publish_change(job, "updated")
        return job


def _sweep_public(sweep: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    spec = sweep["spec"]
    return {"id": sweep["id"], "name": sweep["name"], "created": sweep["created"],
            "template": spec.get("template"), "notebook": spec.get("notebook"),
            "grid": spec.get("grid"), "parameters": spec.get("parameters"),
            "priority": spec.get("priority"), "tags": spec.get("tags") or [],
            "states": counts, "job_count": sum(counts.values())}
