"""A finished job's files into the asset registry: artifacts in place, the model linked.

Files are registered where they are (job directories live inside the ``artifacts``
root) with the job's id; the final model named by ``manifest.json`` is linked into
``models/`` (a hard link, or a copy across filesystems, made by the registry) as an
asset whose metadata holds the job's id, parameters and final metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from ..errors import ApiError
from . import states
from .artifacts import safe_file
from .jobdir import MANIFEST, METRICS_CSV, OUTPUT, PAPERMILL_LOG, read_json

log = logging.getLogger("notebench.jobs")


async def register_outputs(assets: Any, row: dict[str, Any],
                           checkpoints: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Register a job's files; returns the model record (``job.model``) when one was linked."""
    job_id = row["id"]
    job_dir = Path(row["job_dir"])
    manifest = await asyncio.to_thread(read_json, job_dir / MANIFEST)
    manifest = manifest if isinstance(manifest, dict) else {}
    model = manifest.get("model") if isinstance(manifest.get("model"), dict) else None
    names = [OUTPUT, PAPERMILL_LOG, METRICS_CSV]
    names += [str(p) for p in manifest.get("artifacts") or [] if isinstance(p, str)]
    names += [c["path"] for c in checkpoints]
    if model and isinstance(model.get("path"), str):
        names.append(model["path"])
    meta = {"job_id": job_id, "job_name": row["name"], "template": row["template"]}
    for name in dict.fromkeys(names):
        try:
            path = await asyncio.to_thread(safe_file, job_dir, name)
        except ApiError:
            continue  # gone (checkpoints beyond the last K) or outside the job directory
        with contextlib.suppress(ApiError):
            await assets.register_path(path, category="artifacts", source="job",
                                       job_id=job_id, metadata=meta)
    if not model or row["state"] not in (states.SUCCEEDED, states.STOPPED):
        return None
    try:
        src = await asyncio.to_thread(safe_file, job_dir, str(model.get("path")))
    except ApiError:
        log.warning("job %s: the manifest's model %s is not in its directory", job_id,
                    model.get("path"))
        return None
    metrics = model.get("metrics") or row["final_metrics"] or {}
    metadata = {"job_id": job_id, "parameters": row["resolved"],
                "parameters_given": row["parameters"], "final_metrics": metrics,
                "framework": model.get("framework"),
                "model_parameters": model.get("parameters"), "template": row["template"]}
    name = str(model.get("name") or row["name"])
    if not Path(name).suffix:
        name += src.suffix  # the registry sorts files by their extension
    asset = await assets.link_into(src, "models", name, source="job", job_id=job_id,
                                   metadata=metadata)
    return {"asset_id": asset.get("id") if isinstance(asset, dict) else None, "name": name,
            "path": src.relative_to(job_dir.resolve()).as_posix(), "metrics": metrics}
