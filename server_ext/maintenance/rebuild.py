"""``doctor --rebuild``: re-register a workspace's jobs and assets from its files, with the
server's own code, no server running.

The store is opened by the server's ``Store`` with every capability's migrations; the
core's ``LogStore`` takes the jobs' output and an ``EventBus`` without an event log (a
rebuild restores rows, not the history of events); the assets' own registry
(``NotebenchAssetRegistry``) registers files. For each job directory with no row: its row
as it started (``jobdirs``) is inserted by the jobs' repository, the jobs' ``Tailer`` reads
its files to their end (points, checkpoints, progress, output, offsets, as a server
would), the server's ``outcome`` decides its state, and ``register_outputs`` registers its
files and its model, found where the server had linked it (``ExistingLinks``) rather than
linked twice. Then the registry's scanner registers every other file of the roots and its
hasher hashes them. Rows that exist are left alone: a rebuild adds what is missing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, cast

from notebench.jobprotocol import MANIFEST_FILE

from ..assets import schema as asset_schema
from ..assets.registry import NotebenchAssetRegistry
from ..capability import load_capabilities
from ..events.bus import EventBus
from ..jobs import states
from ..jobs.compare import SeriesCache
from ..jobs.jobdir import read_json
from ..jobs.live import ActiveClock, Followed, LiveJob, LiveJobs
from ..jobs.registration import register_outputs
from ..jobs.repository import JobRepository
from ..jobs.tailer import Tailer
from ..logs import LogStore
from ..services import Services
from ..store import Store
from ..workspace import Workspace
from .dbfacts import sha256_of
from .doctor import asset_files, job_directories, workspace_layout
from .errors import EXIT_INVALID, MaintenanceError
from .jobdirs import ending_of, row_from_dir

log = logging.getLogger("notebench.maintenance")

#: seconds without a file hashed after which the rest is left to the server's hasher
HASH_PATIENCE = 30.0


async def rebuild(workspace: Workspace) -> dict[str, Any]:
    """Register what the workspace's files hold and its store lacks (the owner lock is
    the caller's); what was done."""
    capabilities = load_capabilities()
    store = Store(workspace.store_path, journal_mode=workspace.journal_mode,
                  schemas={c.name: c.schema for c in capabilities if c.schema})
    try:
        await asyncio.to_thread(store.open)
    except (sqlite3.DatabaseError, RuntimeError) as exc:
        raise MaintenanceError(
            f"the store {workspace.store_path} cannot be opened ({exc}): move it aside (or "
            "restore a backup) and run doctor --rebuild again", EXIT_INVALID) from None
    try:
        bus = EventBus(None)
        logs = LogStore(store, bus)
        services = Services(cast(Any, None), workspace, store, bus, logs)
        registry = NotebenchAssetRegistry(services)
        services.assets = registry
        try:
            jobs = await _rebuild_jobs(workspace, store, bus, logs, registry)
            assets = await _register_files(registry)
        finally:
            await registry.stop()
    finally:
        await asyncio.to_thread(store.close)
    return {"jobs": jobs, "assets": assets}


async def _rebuild_jobs(workspace: Workspace, store: Store, bus: EventBus, logs: LogStore,
                        registry: NotebenchAssetRegistry) -> dict[str, Any]:
    _, runs_dir, _ = workspace_layout(workspace.path)
    repository = JobRepository(store, SeriesCache(0))
    live = LiveJobs()
    tailer = Tailer(store, bus, logs, live)
    links = ExistingLinks(registry)
    done: dict[str, Any] = {"registered": [], "states": {}, "skipped": [], "models": 0}
    for job_dir in await asyncio.to_thread(lambda: list(job_directories(runs_dir))):
        job_id = job_dir.name
        if await repository.find(job_id) is not None:
            continue
        row = await asyncio.to_thread(row_from_dir, job_dir)
        if row is None:
            done["skipped"].append({"id": job_id,
                                    "reason": "no readable job.json or run.json of its id"})
            continue
        await repository.insert(row)
        live.add(LiveJob(job_id, row["kind"], job_dir, ActiveClock(),
                         Followed(job_id, job_dir, row["kind"])))
        try:
            followed = await asyncio.to_thread(tailer.drain, job_id)
            await repository.flush()
        finally:
            live.remove(job_id)
        assert followed is not None
        state, reason, fields = await asyncio.to_thread(ending_of, row, followed)
        await repository.update(job_id, state=state, reason=reason, updated=time.time(),
                                **fields)
        done["registered"].append(job_id)
        done["states"][state] = done["states"].get(state, 0) + 1
        if state in states.TERMINAL and state != states.CANCELLED:
            done["models"] += await _register_outputs(repository, links, job_id)
    return done


async def _register_outputs(repository: JobRepository, links: ExistingLinks,
                            job_id: str) -> int:
    """The finished job's files and model, as its finisher registers them; 1 when its
    model was registered."""
    row = await repository.row(job_id)
    await links.adopt(Path(row["job_dir"]))
    try:
        model = await register_outputs(cast(Any, links), row,
                                       await repository.checkpoints(job_id))
    except Exception as exc:
        log.warning("registering the files of job %s failed: %s", job_id, exc)
        return 0
    if model is None:
        return 0
    await repository.update(job_id, model=model, updated=time.time())
    return 1 if model.get("asset_id") else 0


async def _register_files(registry: NotebenchAssetRegistry) -> dict[str, int]:
    """Every file of every root the scanner picks up, registered, then hashed by the
    registry's own hasher (files written in the last seconds once they settle); files
    whose hashing stops making progress for ``HASH_PATIENCE`` seconds are left to the
    server's hasher."""
    found = {"added": 0, "missing": 0, "unhashed": 0}
    for name in registry.categories:
        changes = await registry.scanner.refresh(name, deep=True)
        found["added"] += changes.added
        found["missing"] += changes.missing
    registry.hasher.start()
    registry.hasher.wake()
    left = await registry.store.read(_unhashed)
    progress = time.monotonic()
    while left and time.monotonic() - progress < HASH_PATIENCE:
        await asyncio.sleep(0.1)
        now_left = await registry.store.read(_unhashed)
        if now_left < left:
            progress = time.monotonic()
        left = now_left
    found["unhashed"] = left
    return found


def _unhashed(conn: sqlite3.Connection) -> int:
    """Files registered and present whose sha256 is not known yet."""
    return int(conn.execute("SELECT COUNT(*) FROM assets WHERE kind = 'file' AND "
                            "sha256 IS NULL AND state = 'present'").fetchone()[0])


class ExistingLinks:
    """The registry as ``register_outputs`` sees it, except that a job's model is not
    linked into ``models/`` twice: the link (or copy) the server made is found there and
    registered; only a model whose link is gone is linked again, as at the job's end.
    ``adopt`` records the found link as the registry's own first, so the model file in
    the job's directory, with two links now, registers as an artifact too."""

    def __init__(self, registry: NotebenchAssetRegistry) -> None:
        self.registry = registry
        self._found: dict[Path, Path] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.registry, name)

    async def adopt(self, job_dir: Path) -> None:
        """Find the model named by the job's manifest in ``models/``; record the link."""
        manifest = await asyncio.to_thread(read_json, job_dir / MANIFEST_FILE)
        model = manifest.get("model") if isinstance(manifest, dict) else None
        path = model.get("path") if isinstance(model, dict) else None
        if not isinstance(path, str):
            return
        src = (job_dir / path).resolve()
        if not src.is_file() or not src.is_relative_to(job_dir.resolve()):
            return
        found = await asyncio.to_thread(find_copy, self.registry.category("models").path, src)
        if found is None:
            return
        self._found[src] = found
        st = await asyncio.to_thread(os.stat, found)
        if st.st_nlink == 2:
            await self.registry.write(lambda conn: asset_schema.record_link(
                conn, st.st_dev, st.st_ino, st.st_nlink))

    async def register_path(self, path: Path, **kwargs: Any) -> dict[str, Any]:
        return await self.registry.register_path(path, **kwargs)

    async def link_into(self, src: Path, category: str, name: str, *, source: str,
                        job_id: str | None, metadata: dict[str, Any] | None = None,
                        tags: list[str] | None = None) -> dict[str, Any]:
        found = self._found.get(Path(src).resolve())
        if found is None:
            return await self.registry.link_into(src, category, name, source=source,
                                                 job_id=job_id, metadata=metadata, tags=tags)
        return await self.registry.register_path(found, category=category, source=source,
                                                 job_id=job_id, metadata=metadata,
                                                 tags=tags)


def find_copy(root: Path, src: Path) -> Path | None:
    """The file under ``root`` that is ``src``: its only other hard link, or (copied
    across filesystems) a file of the same size and sha256. None when there is none."""
    st = os.stat(src)
    if st.st_nlink > 2:
        return None  # links not all the registry's: never adopted
    same_size = []
    for rel in asset_files(root):
        path = root / rel
        try:
            other = os.stat(path, follow_symlinks=False)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return path
        if st.st_nlink == 1 and other.st_nlink == 1 and other.st_size == st.st_size:
            same_size.append(path)
    if not same_size:
        return None
    digest = sha256_of(src)[0]
    return next((p for p in same_size if sha256_of(p)[0] == digest), None)
