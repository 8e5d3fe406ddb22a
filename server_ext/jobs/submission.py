"""What a submission asks for, checked, and the job it becomes: ``Submission``.

Pure of the server: given where notebooks and jobs live, the asset registry's view (or
none), the installed kernels and the machine's GPUs, it turns a request into a checked
source notebook, a job row (state ``queued``) and the job directory it starts with.
Every problem is a 400 with a code; nothing is written before everything was checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import ENVIRONMENT, JOB_JSON, NOTEBOOK, new_job_id, write_json_atomic

from ..errors import ApiError, bad_request
from . import states
from .availability import check_available, describe_unavailable, unavailable_reason
from .params import ParameterError, check_values
from .templates import (
    NotebookSource,
    describe_template,
    list_templates,
    read_notebook,
    safe_child,
    template_path,
)

if TYPE_CHECKING:
    from ..seams import AssetsView

#: the range of a job's ``priority`` (what the store's integers and the queue sort take)
MAX_PRIORITY = 1_000_000
MAX_RETRIES = 10


def submission_options(body: dict[str, Any], default_timeout: float) -> dict[str, Any]:
    """The submission options of a request body, checked (400 on a bad one)."""
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise bad_request("'parameters' must be an object", "invalid_parameters")
    resources = body.get("resources") or {}
    if not isinstance(resources, dict):
        raise bad_request("'resources' must be an object", "invalid_resources")
    priority = body.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool) or not (
            -MAX_PRIORITY <= priority <= MAX_PRIORITY):
        raise bad_request(f"'priority' must be an integer between {-MAX_PRIORITY} and "
                          f"{MAX_PRIORITY} (higher runs first)", "invalid_request")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
        raise bad_request("'name' must be a non-empty string of at most 200 characters",
                          "invalid_request")
    tags = body.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise bad_request("'tags' must be a list of non-empty strings", "invalid_request")
    timeout = body.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(
            timeout, bool) or timeout <= 0):
        raise bad_request("'timeout' must be a positive number of seconds", "invalid_request")
    kernel_name = body.get("kernel_name")
    if kernel_name is not None and not isinstance(kernel_name, str):
        raise bad_request("'kernel_name' must be a string", "invalid_request")
    retries = body.get("retries", 0)
    if not isinstance(retries, int) or isinstance(retries, bool) or not (
            0 <= retries <= MAX_RETRIES):
        raise bad_request(f"'retries' must be an integer between 0 and {MAX_RETRIES} (times "
                          "a job lost with its worker is submitted again)", "invalid_request")
    return {"parameters": parameters, "resources": resources, "priority": priority,
            "name": name.strip() if name else None, "tags": list(dict.fromkeys(tags)),
            "timeout": float(timeout) if timeout else (default_timeout or None),
            "kernel_name": kernel_name, "retries": retries}


def requested_resources(resources: dict[str, Any]) -> dict[str, Any]:
    """What a job asked for (a restart asks the same), without what it was assigned."""
    out: dict[str, Any] = {}
    if resources.get("pinned") and resources.get("gpu_uuids"):
        out["gpus"] = list(resources["gpu_uuids"])
    elif "gpus" in resources:
        out["gpus"] = resources["gpus"]
    if resources.get("cpus"):
        out["cpus"] = resources["cpus"]
    return out


def installed_packages() -> str:
    from importlib import metadata

    names = set()
    for dist in metadata.distributions():
        with contextlib.suppress(Exception):
            names.add(f"{dist.metadata['Name']}=={dist.version}")
    header = f"# python {sys.version.split()[0]} ({sys.executable})\n"
    return header + "\n".join(sorted(names, key=str.lower)) + "\n"


def write_job_dir(job_dir: Path, notebook: bytes, packages: str, job: dict[str, Any]) -> None:
    job_dir.mkdir(parents=True, exist_ok=False)
    try:
        (job_dir / NOTEBOOK).write_bytes(notebook)
        (job_dir / ENVIRONMENT).write_text(packages)
        write_json_atomic(job_dir / JOB_JSON, job)
    except BaseException:
        shutil.rmtree(job_dir, ignore_errors=True)
        raise


@dataclass
class SubmissionSettings:
    """The job service's settings that go into a job's row and ``job.json``."""

    default_timeout: float = 0.0
    autosave_seconds: int = 10
    kernel_start_timeout: int = 60


#: the fields of a row that ``job.json`` carries (what the runner reads)
JOB_JSON_FIELDS = ("id", "kind", "name", "template", "notebook_path", "notebook_hash",
                   "kernel_name", "parameters", "resolved", "auto", "resources", "priority",
                   "tags", "timeout", "parent_id", "resume_from", "created")


class Submission:
    """A request to a checked job row and its directory (see the module docstring)."""

    def __init__(self, *, server_root: Path, notebooks: Path, runs_dir: Path,
                 assets: AssetsView | None, kernel_names: Callable[[], Iterable[str]] | None,
                 gpu_uuids: Callable[[], list[str]], settings: SubmissionSettings,
                 placement: Callable[[dict[str, Any]], str | None] | None = None) -> None:
        self.server_root = server_root
        self.notebooks = notebooks
        self.runs_dir = runs_dir
        self.assets = assets
        self.kernel_names = kernel_names  # blocking: called on a thread
        self.gpu_uuids = gpu_uuids
        self.settings = settings
        #: an executor that places jobs on its own machines: why it could never run a job
        #: asking for these resources (blocking); None: the local machine's GPUs apply
        self.placement = placement
        self._packages: str | None = None

    # -- notebooks ---

    def display_path(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.server_root).as_posix()
        except ValueError:
            return path.name

    def read_user_notebook(self, path: str, validate: bool) -> NotebookSource:
        target = safe_child(self.server_root, path)
        return read_notebook(target, target.relative_to(self.server_root).as_posix(),
                             validate=validate)

    def read_template(self, name: str, validate: bool) -> NotebookSource:
        path = template_path(self.notebooks, name)
        source = read_notebook(path, self.display_path(path), validate=validate)
        check_available(path.stem, source.nb)
        return source

    async def templates(self, durations: dict[str, tuple[float, int]]
                        ) -> dict[str, list[dict[str, Any]]]:
        """The templates offered here, each with its duration estimate from ``durations``,
        and those not offered (their packages are not installed) with the reason."""

        def read() -> list[tuple[NotebookSource, str | None]]:
            return [(s, unavailable_reason(s.nb)) for s in list_templates(self.notebooks)]

        offered, unavailable = [], []
        for source, reason in await asyncio.to_thread(read):
            source.display_path = self.display_path(source.path)
            if reason is not None:
                unavailable.append(describe_unavailable(source.path.stem, source.display_path,
                                                        source.nb, reason))
            else:
                offered.append(describe_template(source, durations.get(source.path.stem)))
        return {"templates": offered, "unavailable": unavailable}

    async def notebook_parameters(self, path: str) -> dict[str, Any]:
        source = await asyncio.to_thread(self.read_user_notebook, path, False)
        return {"path": source.display_path, "kernel_name": source.kernel_name,
                "parameters_cell": source.cell.index,
                "parameters": [p.describe() for p in source.cell.parameters],
                "problems": source.cell.problems}

    async def source_of(self, body: dict[str, Any]) -> tuple[NotebookSource, str | None]:
        """The notebook a request names (``notebook`` or ``template``), validated."""
        notebook = body.get("notebook")
        template = body.get("template")
        if (notebook is None) == (template is None):
            raise bad_request("name exactly one of 'notebook' (a path under the server root), "
                              "'template' or 'from_job'", "invalid_request")
        if notebook is not None and not isinstance(notebook, str):
            raise bad_request("'notebook' must be a path", "invalid_request")
        if template is not None and not isinstance(template, str):
            raise bad_request("'template' must be a template name", "invalid_request")
        if template is not None:
            return await asyncio.to_thread(self.read_template, template, True), template
        try:
            source = await asyncio.to_thread(self.read_user_notebook, notebook, True)
        except ApiError as exc:
            if exc.status == 404:
                raise bad_request(f"no such notebook: {notebook}", "unknown_notebook"
                                  ) from None
            raise
        return source, None

    # -- the job ---

    async def job_row(self, source: NotebookSource, options: dict[str, Any], *,
                      template: str | None, parent: dict[str, Any] | None = None,
                      resume_from: str | None = None, sweep_id: str | None = None,
                      cloned_from: str | None = None) -> dict[str, Any]:
        """The row of a new queued job: parameters, assets, kernel and resources checked."""
        if source.cell.problems:
            raise bad_request("the parameters cell cannot be used: "
                              + "; ".join(source.cell.problems), "invalid_notebook")
        given = options["parameters"]
        try:
            checked = check_values(source.cell, given)
        except ParameterError as exc:
            raise bad_request(f"invalid parameters: {exc}", "invalid_parameters",
                              problems=exc.problems) from None
        resolved = await self.resolve_assets(source, checked)
        kernel_name = options.get("kernel_name") or source.kernel_name
        if not kernel_name:
            raise bad_request("the notebook names no kernel (metadata.kernelspec.name): "
                              "pass 'kernel_name'", "unknown_kernel")
        await self.check_kernel(kernel_name)
        resources = self.check_resources(options["resources"])
        if self.placement is not None:
            refusal = await asyncio.to_thread(self.placement, resources)
            if refusal is not None:
                raise bad_request(refusal, "invalid_resources")
        job_id = new_job_id()
        now = time.time()
        return {
            "id": job_id, "kind": "papermill",
            "name": options.get("name") or (template or Path(source.display_path).stem),
            "state": states.QUEUED, "template": Path(source.path).stem if template else None,
            "notebook_path": source.display_path, "notebook_hash": source.sha256,
            "kernel_name": kernel_name, "job_dir": str(self.runs_dir / job_id),
            "parameters": given, "resolved": resolved, "auto": {}, "resources": resources,
            "priority": options["priority"], "tags": options["tags"],
            "timeout": options["timeout"], "parent_id": parent["id"] if parent else None,
            "resume_from": resume_from, "created": now, "updated": now,
            "sweep_id": sweep_id, "cloned_from": cloned_from,
            "retries": options.get("retries", 0),
        }

    def job_json(self, row: dict[str, Any]) -> dict[str, Any]:
        """What the runner reads of a job (``job.json``)."""
        return {**{k: row.get(k) for k in JOB_JSON_FIELDS}, "notebook": NOTEBOOK,
                "environment": ENVIRONMENT, "autosave_seconds": self.settings.autosave_seconds,
                "start_timeout": self.settings.kernel_start_timeout}

    async def write_job_dir(self, row: dict[str, Any], source: NotebookSource) -> None:
        """The job directory: the notebook snapshot, the package list and ``job.json``."""
        if self._packages is None:
            self._packages = await asyncio.to_thread(installed_packages)
        await asyncio.to_thread(write_job_dir, Path(row["job_dir"]), source.data,
                                self._packages, self.job_json(row))

    # -- checks ---

    async def resolve_assets(self, source: NotebookSource, checked: dict[str, Any]
                             ) -> dict[str, Any]:
        """Literal defaults and given values; asset references replaced by their paths."""
        resolved: dict[str, Any] = {}
        for param in source.cell.parameters:
            if param.name in checked:
                resolved[param.name] = checked[param.name]
            elif param.has_default and param.default_is_literal:
                resolved[param.name] = _json_default(param.default)
        problems = []
        for param in source.cell.parameters:
            if not param.asset or param.name not in resolved:
                continue
            ref = resolved[param.name]
            if not isinstance(ref, str) or not ref:
                continue
            if self.assets is None:
                if Path(ref).is_absolute() and Path(ref).exists():
                    continue
                problems.append({"name": param.name, "message": "the asset registry is not "
                                 "available to resolve this asset"})
                continue
            try:
                asset = await self.assets.resolve(ref, param.asset)
            except ApiError as exc:
                problems.append({"name": param.name,
                                 "message": f"no {param.asset} asset {ref!r}: {exc.message}"})
                continue
            resolved[param.name] = str(asset["path"])
        if problems:
            message = "; ".join(f"{p['name']}: {p['message']}" for p in problems)
            raise bad_request(f"invalid parameters: {message}", "invalid_parameters",
                              problems=problems)
        return resolved

    async def check_kernel(self, kernel_name: str) -> None:
        if self.kernel_names is None:
            return
        try:
            names = set(await asyncio.to_thread(self.kernel_names))
        except Exception:
            return
        if kernel_name not in names:
            raise bad_request(f"no kernel named {kernel_name!r} (installed: "
                              f"{', '.join(sorted(names)) or 'none'})", "unknown_kernel")

    def check_resources(self, resources: dict[str, Any]) -> dict[str, Any]:
        """``gpus`` (a count, or UUIDs to pin) and ``cpus``, checked against the machine
        (the local one; on a cluster ``placement`` judges the count)."""
        gpus_known = self.gpu_uuids()
        gpus = resources.get("gpus")
        out: dict[str, Any] = {}
        if isinstance(gpus, list):
            if not all(isinstance(u, str) for u in gpus):
                raise bad_request("resources.gpus must be a count or a list of GPU UUIDs",
                                  "invalid_resources")
            unknown = [u for u in gpus if u not in gpus_known]
            if unknown and self.placement is None:
                raise bad_request(f"unknown GPU UUIDs: {', '.join(unknown)}",
                                  "invalid_resources")
            out["gpu_uuids"] = list(dict.fromkeys(gpus))
            out["gpus"] = len(out["gpu_uuids"])
            out["pinned"] = True
        else:
            count = 1 if gpus is None and gpus_known and self.placement is None else (
                0 if gpus is None else gpus)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise bad_request("resources.gpus must be a count or a list of GPU UUIDs",
                                  "invalid_resources")
            if count > len(gpus_known) and self.placement is None:
                raise bad_request(f"{count} GPUs asked for, {len(gpus_known)} available",
                                  "invalid_resources")
            out["gpus"] = count
        cpus = resources.get("cpus")
        if cpus is not None:
            if not isinstance(cpus, int) or isinstance(cpus, bool) or cpus < 1:
                raise bad_request("resources.cpus must be a positive integer",
                                  "invalid_resources")
            out["cpus"] = cpus
        return out


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value
