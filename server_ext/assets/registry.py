"""``NotebenchAssetRegistry``: the assets capability's service (``services.assets``).

Configured as ``c.NotebenchAssetRegistry.<trait>``. A facade over its parts: the categories
(roots), the scanner and background hasher, ``placement`` (registering and placing files),
``trash``, ``linker`` (job outputs, imports), ``uploads`` (resumable) and ``idle`` (bodies
being received). The parts see it as ``ports.AssetCore``; the SQL is in ``repository``.
Handlers parse and call it; the jobs capability calls ``resolve``, ``register_path``,
``link_into``, ``reconcile`` and ``delete``. Blocking work runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from traitlets import Bool, Dict, Float, Int, List, Unicode
from traitlets.config import LoggingConfigurable

from ..errors import ApiError, bad_request, conflict, not_found
from . import repository, schema
from .fields import READ_ONLY_KEYS, check_tags
from .idle import IdleWatch
from .linking import Linker
from .listing import ListQuery, list_page
from .paths import TMP_DIR, job_folder_refused, real_root
from .placing import Placement
from .ports import ScanChanges
from .roots import GIB, Category, build_categories, prepare_folders, unknown_category
from .scanner import Hasher, Scanner
from .trashbin import TrashBin
from .uploads import ResumableUploads

if TYPE_CHECKING:
    from ..services import Services
    from .sniff import Sniffed

log = logging.getLogger("notebench.assets")

ASSETS_TOPIC = "assets"
TEMPLATES_CATEGORY = "notebooks"  # the jobs' templates folder
ID_PATTERN = r"[0-9a-f]{16}"
_ID = re.compile(ID_PATTERN)


class NotebenchAssetRegistry(LoggingConfigurable):
    """Models, datasets, checkpoints, notebooks and artifacts, with their hashes."""

    roots = Dict(
        key_trait=Unicode(), value_trait=Unicode(), default_value={},
        help="Category -> folder, overriding <workspace>/<category> (a new name adds a "
             "category, e.g. {'datasets': '/mnt/shared/datasets'}).",
    ).tag(config=True)
    allowed_types = Dict(
        key_trait=Unicode(), value_trait=List(Unicode()), default_value={},
        help="Category -> accepted type names (see notebench.server.assets.sniff.TYPES; "
             "'directory' for folders, '*' for anything).",
    ).tag(config=True)
    max_upload_bytes = Int(
        20 * GIB, help="Largest file a category accepts, unless size_limits says otherwise."
    ).tag(config=True)
    size_limits = Dict(
        key_trait=Unicode(), value_trait=Int(), default_value={},
        help="Category -> largest accepted file in bytes.",
    ).tag(config=True)
    import_dirs = List(
        Unicode(), default_value=[],
        help="Folders of the server's disk that POST assets/import may copy from (none by "
             "default; the user's home is not implied).",
    ).tag(config=True)
    allow_hidden = Bool(
        None, allow_none=True,
        help="Accept hidden names (leading dot). Default: ContentsManager.allow_hidden.",
    ).tag(config=True)
    trash_retention_days = Float(
        30.0, help="Trashed assets older than this are purged (0: never automatically)."
    ).tag(config=True)
    upload_expiry_hours = Float(
        24.0, help="Resumable uploads untouched this long are deleted."
    ).tag(config=True)
    scan_interval = Float(
        300.0, help="Seconds between deep scans of the roots (0: only at start and on list)."
    ).tag(config=True)
    list_scan_budget = Float(
        5.0, help="Seconds a listing waits for the reconciliation with the disk."
    ).tag(config=True)
    upload_read_chunk_bytes = Int(
        1024 * 1024, help="Bytes Tornado reads per chunk of an upload body (its default is "
                          "64 KiB; see tests/benchmarks/bench_assets.py)."
    ).tag(config=True)
    upload_batch_bytes = Int(
        4 * 1024 * 1024, help="Bytes gathered before a write to disk (two batches at most "
                              "are in memory per upload)."
    ).tag(config=True)
    upload_idle_timeout = Float(
        300.0, help="Seconds an upload may go without receiving a byte before its connection "
                    "is closed (its temporary file is then removed)."
    ).tag(config=True)
    progress_bytes = Int(
        256 * 1024 * 1024, help="Files at least this large publish hashing progress events."
    ).tag(config=True)

    def __init__(self, services: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.services = services
        self.store = services.store
        self.bus = services.bus
        self.workspace = services.workspace
        self.categories = build_categories(
            self.workspace.path, paths=dict(self.roots), types=dict(self.allowed_types),
            limits=dict(self.size_limits), default_limit=self.max_upload_bytes)
        self.scanner = Scanner(self)
        self.hasher = Hasher(self)
        self.placement = Placement(self)
        self.trash = TrashBin(self)
        self.linker = Linker(self)
        self.uploads = ResumableUploads(self)
        self.idle = IdleWatch()  # upload bodies being received
        self.commit_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._refreshes: dict[str, dict[str, Any]] = {}
        templates = os.path.realpath(self.workspace.root(TEMPLATES_CATEGORY))
        self.code_categories = frozenset(
            name for name, cat in self.categories.items()
            if name == TEMPLATES_CATEGORY or os.path.realpath(cat.path) == templates)

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Create folders, clear what a crash left, then reconcile and hash in the background."""
        for category in self.categories.values():
            await asyncio.to_thread(prepare_folders, category)
        await self.uploads.recover()
        self.hasher.start()
        self._tasks.append(asyncio.ensure_future(self._maintenance()))
        self._tasks.append(asyncio.ensure_future(self._watch_idle_uploads()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.hasher.stop()
        await asyncio.to_thread(self.scanner.close)

    async def _maintenance(self) -> None:
        """Deep scans (every ``scan_interval``), upload expiry and trash retention."""
        first = True
        while True:
            if first or self.scan_interval > 0:
                for name in self.categories:
                    try:
                        await self.scanner.deep_scan(name)
                    except Exception:
                        log.exception("scanning %s failed", name)
                self.hasher.wake()
            first = False
            try:
                await self.uploads.expire()
                if self.trash_retention_days > 0:
                    await self.purge_trash(older_than_days=self.trash_retention_days)
            except Exception:
                log.exception("asset housekeeping failed")
            await asyncio.sleep(self.scan_interval if self.scan_interval > 0 else 600.0)

    async def _watch_idle_uploads(self) -> None:
        """Close upload connections that stopped sending (their clean-up then runs)."""
        while True:
            await asyncio.sleep(max(1.0, min(30.0, self.upload_idle_timeout / 4)))
            if self.idle.close_idle(time.monotonic() - self.upload_idle_timeout):
                log.info("closed uploads idle for %.0f s", self.upload_idle_timeout)

    # -- basics ------------------------------------------------------------------------------

    @property
    def hidden_allowed(self) -> bool:
        if self.allow_hidden is not None:
            return bool(self.allow_hidden)
        serverapp = getattr(self.services.config, "serverapp", None)
        manager = getattr(serverapp, "contents_manager", None)
        return bool(getattr(manager, "allow_hidden", False))

    @property
    def read_only(self) -> bool:
        return self.workspace.read_only

    def category(self, name: str) -> Category:
        category = self.categories.get(name)
        if category is None:
            raise unknown_category(name)
        return category

    def runs_code(self, category: str) -> bool:
        """Whether the category's root holds the jobs' templates: a notebook written there
        runs as whoever next starts it, so writing there needs ``execute`` too."""
        return category in self.code_categories

    def _is_job_folder(self, path: Path) -> bool:
        """(thread) Whether ``path`` is the jobs folder, a folder that holds it or a job's
        directory: the jobs capability owns them, they are not assets. (The jobs' trash is
        out of reach already: ``.trash`` is a reserved name in any path.)"""
        runs = getattr(getattr(self.services, "jobs", None), "runs_dir", None)
        if runs is None:
            return False
        runs_real = Path(os.path.realpath(runs))
        real = Path(os.path.realpath(path))
        return runs_real.is_relative_to(real) or real.parent == runs_real

    async def refuse_job_folder(self, path: Path) -> None:
        """403 when ``path`` is a job folder (see ``_is_job_folder``)."""
        if await asyncio.to_thread(self._is_job_folder, path):
            raise job_folder_refused()

    def tmp_dir(self, category: Category) -> Path:
        return real_root(category.path) / TMP_DIR

    def public(self, row: Any, *, manifest: bool = False) -> dict[str, Any]:
        """An asset as the API returns it (absolute ``path`` included)."""
        asset = schema.row_to_asset(row)
        asset["path"] = str(self.category(asset["category"]).path / asset["rel_path"])
        if manifest and "manifest" in row.keys() and row["manifest"]:  # noqa: SIM118 (sqlite3.Row)
            asset["manifest"] = orjson.loads(row["manifest"])
        return asset

    def publish(self, type_: str, data: dict[str, Any]) -> None:
        self.bus.publish(ASSETS_TOPIC, type_, data, replay=True)

    def changed_on_disk(self, category: str, changes: ScanChanges) -> None:
        """Scanner callback (loop): tell subscribers, wake the hasher."""
        self.publish("scan.changed", {"category": category, "added": changes.added,
                                      "changed": changes.changed, "missing": changes.missing})
        if changes.added or changes.changed:
            self.hasher.wake()

    def hashed(self, results: list[dict[str, Any]]) -> None:
        """Hasher callback (loop): a batch of found files got their hashes."""
        categories = sorted({r["category"] for r in results})
        self.publish("scan.hashed", {"categories": categories, "count": len(results)})

    async def write(self, fn: Callable[[Any], Any]) -> Any:
        """``store.write``, shielded: a cancelled caller never cancels a queued write."""
        return await asyncio.shield(self.store.write(fn))

    async def row(self, asset_id: str) -> Any:
        """An asset's row, whatever its state (404 when there is none)."""
        if not _ID.fullmatch(asset_id or ""):
            raise not_found("no such asset")
        row = await self.store.read(lambda conn: repository.row_by_id(conn, asset_id))
        if row is None:
            raise not_found("no such asset")
        return row

    def link_ok_sync(self, dev: int, ino: int, nlink: int) -> bool:
        """(thread) Whether a file's other hard links are all ones the registry made."""
        return self.store.read_sync(lambda conn: schema.own_link(conn, dev, ino, nlink))

    async def with_duplicates(self, asset: dict[str, Any]) -> dict[str, Any]:
        await self.store.read(lambda conn: schema.duplicates_of(conn, [asset]))
        return asset

    async def drop_folder(self, category: str, rel_dir: str) -> None:
        """The scanner stops descending into ``rel_dir`` (a folder asset now, or gone)."""
        await self.scanner.drop(category, rel_dir)

    async def rescan(self, category: str) -> None:
        await self.scanner.refresh(category)

    # -- reading -----------------------------------------------------------------------------

    async def category_of(self, asset_id: str) -> str:
        """The category of an asset (404 when there is none)."""
        return str((await self.row(asset_id))["category"])

    async def get(self, asset_id: str, *, manifest: bool = False) -> dict[str, Any]:
        row = await self.row(asset_id)
        asset = self.public(row, manifest=manifest)
        await self.store.read(lambda conn: schema.duplicates_of(conn, [asset]))
        return asset

    async def reconcile(self, category: str) -> bool:
        """Bring a category in step with its folder; False if that took over the budget.

        Waits for a refresh that begins after this call (a running one may have listed a
        folder before the caller's change); callers arriving together share one.
        """
        self.category(category)
        if self.read_only:
            return True
        state = self._refreshes.get(category)
        if state is None or state["task"].done() or state["begun"]:
            previous = state["task"] if state is not None and not state["task"].done() else None
            state = {"begun": False}

            async def run(state: dict[str, Any] = state) -> ScanChanges:
                if previous is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(previous)
                state["begun"] = True
                return await self.scanner.refresh(category)

            state["task"] = asyncio.ensure_future(run())
            self._refreshes[category] = state
        try:
            await asyncio.wait_for(asyncio.shield(state["task"]), timeout=self.list_scan_budget)
        except asyncio.TimeoutError:
            return False
        except Exception:
            log.exception("reconciling %s with the disk failed", category)
            return False
        return True

    async def list_assets(self, category: str, args: dict[str, str | None]) -> dict[str, Any]:
        query = ListQuery.parse(category, args)
        self.category(category)
        complete = await self.reconcile(category) if not query.cursor else True
        page = await self.store.read(lambda conn: list_page(conn, query))
        root = self.category(category).path
        for item in page["items"]:
            item["path"] = str(root / item["rel_path"])
        page["reconciled"] = complete
        return page

    async def roots_info(self) -> dict[str, Any]:
        usage = await self.store.read(repository.usage)
        result = []
        for category in self.categories.values():
            disk = await asyncio.to_thread(_disk, category)
            counts = usage.get(category.name, {})
            result.append({**category.describe(), **disk,
                           "files": counts.get("present", 0),
                           "bytes": counts.get("bytes", 0),
                           "missing": counts.get("missing", 0),
                           "pending_hash": counts.get("pending", 0),
                           "trashed": counts.get("trashed", 0)})
        return {"roots": result, "import_dirs": [str(Path(d).expanduser()) for d in
                                                 self.import_dirs],
                "allow_hidden": self.hidden_allowed, "read_only": self.read_only}

    async def resolve(self, ref: str, category: str | None = None) -> dict[str, Any]:
        """An asset by id, or by relative path, name or stem within a category (404)."""
        if _ID.fullmatch(ref or ""):
            with contextlib.suppress(ApiError):
                asset = await self.get(ref)
                if category is None or asset["category"] == category:
                    return asset
        names = [category] if category is not None else list(self.categories)
        for name in names:
            self.category(name)
            await self.reconcile(name)
        rows = await self.store.read(lambda conn: repository.by_reference(conn, names, ref))
        if not rows:
            raise not_found(f"no asset matches {ref!r}")
        best = min(rank for rank, _ in rows)
        matches = [row for rank, row in rows if rank == best]
        if len(matches) > 1:
            ids = ", ".join(r["id"] for r in matches[:5])
            raise conflict(f"{ref!r} matches several assets ({ids}); use an id", "ambiguous")
        return self.public(matches[0])

    # -- edits -------------------------------------------------------------------------------

    async def update(self, asset_id: str, *, tags: list[str] | None,
                     metadata: dict[str, Any] | None) -> dict[str, Any]:
        """Replace tags; merge metadata (RFC 7396: a null value removes a key)."""
        await self.row(asset_id)
        new_tags = check_tags(tags) if tags is not None else None
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise bad_request("metadata must be an object")
            if READ_ONLY_KEYS & set(metadata):
                raise bad_request(f"these metadata keys are set by notebench: "
                                  f"{sorted(READ_ONLY_KEYS & set(metadata))}", "read_only_key")
        row = await self.write(lambda conn: repository.update_fields(conn, asset_id, new_tags,
                                                                     metadata))
        asset = self.public(row)
        self.publish("asset.updated", asset)
        return await self.with_duplicates(asset)

    # -- the parts' operations that callers reach through the registry ----------------------

    async def register(self, category: str, rel_path: str, *, source: str = "register",
                       job_id: str | None = None, metadata: dict[str, Any] | None = None,
                       tags: list[str] | None = None) -> dict[str, Any]:
        """Register a file or folder inside a root (see ``Placement.register``)."""
        return await self.placement.register(category, rel_path, source=source,
                                             job_id=job_id, metadata=metadata, tags=tags)

    async def register_path(self, path: Path, *, category: str, source: str = "register",
                            job_id: str | None = None, metadata: dict[str, Any] | None = None,
                            tags: list[str] | None = None) -> dict[str, Any]:
        """``register`` for an absolute path inside the category's root."""
        return await self.placement.register_path(path, category=category, source=source,
                                                  job_id=job_id, metadata=metadata, tags=tags)

    async def check_free(self, cat: Category, name: str, overwrite: bool) -> None:
        await self.placement.check_free(cat, name, overwrite)

    async def place_file(self, cat: Category, name: str, staged: Path, *, sha256: str,
                         size: int, sniffed: Sniffed, overwrite: bool, source: str,
                         tags: list[str], metadata: dict[str, Any],
                         job_id: str | None = None) -> dict[str, Any]:
        return await self.placement.place_file(
            cat, name, staged, sha256=sha256, size=size, sniffed=sniffed, overwrite=overwrite,
            source=source, tags=tags, metadata=metadata, job_id=job_id)

    async def place_dir(self, cat: Category, name: str, staged: Path, *, source: str,
                        tags: list[str], metadata: dict[str, Any],
                        job_id: str | None = None) -> dict[str, Any]:
        return await self.placement.place_dir(cat, name, staged, source=source, tags=tags,
                                              metadata=metadata, job_id=job_id)

    async def link_into(self, src: Path, category: str, name: str, *, source: str,
                        job_id: str | None, metadata: dict[str, Any] | None = None,
                        tags: list[str] | None = None) -> dict[str, Any]:
        """Hard-link (or copy across filesystems) ``src`` into a root under a fresh name."""
        return await self.linker.link_into(src, category, name, source=source, job_id=job_id,
                                           metadata=metadata, tags=tags)

    async def delete(self, asset_id: str) -> dict[str, Any]:
        """Move an asset to its root's trash (a missing one is just forgotten)."""
        return await self.trash.delete(asset_id)

    async def trash_row(self, cat: Category, row: Any) -> dict[str, Any]:
        return await self.trash.trash_row(cat, row)

    async def purge_trash(self, *, older_than_days: float | None = None,
                          category: str | None = None) -> dict[str, Any]:
        return await self.trash.purge_older(older_than_days=older_than_days,
                                            category=category)


def _disk(category: Category) -> dict[str, int | None]:
    try:
        usage = shutil.disk_usage(category.path)
    except OSError:
        return {"free_bytes": None, "total_bytes": None}
    return {"free_bytes": usage.free, "total_bytes": usage.total}
