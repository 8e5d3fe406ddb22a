"""A finished job's files into the asset registry: artifacts in place, the model linked.

Files are registered where they are (job directories live inside the ``artifacts``
root) with the job's id; the final model named by ``manifest.json`` is linked into
``models/`` (a hard link, or a copy across filesystems, made by the registry) as an
asset whose metadata holds the job's id, parameters and final metrics. A job moved to
the trash takes its artifact assets out of the registry's listing; restored, its files
are registered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import MANIFEST_FILE, METRICS_CSV, OUTPUT, PAPERMILL_LOG

from ..errors import ApiError
from ..logs.text import printable
from . import states
from .artifacts import safe_file
from .jobdir import read_json

if TYPE_CHECKING:
    from ..seams import AssetsView

log = logging.getLogger("notebench.jobs")

_RECONCILE_TRIES = 10  # each waits the registry's listing budget for its scan


async def register_outputs(assets: AssetsView, row: dict[str, Any],
                           checkpoints: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Register a job's files; returns the model record (``job.model``) when one was linked."""
    job_id = row["id"]
    job_dir = Path(row["job_dir"])
    model = await register_artifacts(assets, row, checkpoints)
    if not model or row["state"] not in (states.SUCCEEDED, states.STOPPED):
        return None
    try:
        src = await asyncio.to_thread(safe_file, job_dir, str(model.get("path")))
    except ApiError:
        log.warning("job %s: the manifest's model %s is not in its directory", job_id,
                    printable(model.get("path")))
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


async def register_artifacts(assets: AssetsView, row: dict[str, Any],
                             checkpoints: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Register a job's files in place as ``artifacts`` (the output notebook, the log, the
    metrics, what the manifest names, the checkpoints); returns the manifest's model entry."""
    job_id = row["id"]
    job_dir = Path(row["job_dir"])
    manifest = await asyncio.to_thread(read_json, job_dir / MANIFEST_FILE)
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
    return model


async def forget_artifacts(assets: AssetsView, job_id: str, rel_dir: str) -> int:
    """Drop the job's artifact assets from the registry once its directory has left the
    root (moved to the trash): the registry first notices the files gone, then forgets
    them. ``rel_dir``: the job directory relative to the ``artifacts`` root. Returns how
    many were forgotten; the model linked into ``models/`` is an asset of its own and stays.
    """
    for _attempt in range(_RECONCILE_TRIES):
        if await assets.reconcile("artifacts"):
            break
    prefix = rel_dir.rstrip("/") + "/"
    forgotten = 0
    cursor: str | None = None
    while True:
        page = await assets.list_assets("artifacts", {
            "name": prefix, "state": "missing", "limit": "1000", "cursor": cursor})
        for item in page["items"]:
            if item.get("job_id") == job_id and str(item.get("rel_path")).startswith(prefix):
                with contextlib.suppress(ApiError):
                    await assets.delete(item["id"])
                    forgotten += 1
        cursor = page.get("next_cursor")
        if not cursor:
            return forgotten
