"""What a submission asks for: its options checked, and the job directory it starts with."""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path
from typing import Any

from notebench.jobprotocol import ENVIRONMENT, JOB_JSON, NOTEBOOK, write_json_atomic

from ..errors import bad_request

#: the range of a job's ``priority`` (what the store's integers and the queue sort take)
MAX_PRIORITY = 1_000_000


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
    return {"parameters": parameters, "resources": resources, "priority": priority,
            "name": name.strip() if name else None, "tags": list(dict.fromkeys(tags)),
            "timeout": float(timeout) if timeout else (default_timeout or None),
            "kernel_name": kernel_name}


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
