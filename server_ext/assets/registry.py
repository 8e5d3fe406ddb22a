"""``NotebenchAssetRegistry``: the assets capability's service (``services.assets``).

Configured as ``c.NotebenchAssetRegistry.<trait>``. It owns the categories (roots), the rows of
the store, the scanner and background hasher, the trash and the resumable uploads;
handlers parse and call it, and the jobs capability calls ``resolve``, ``register_path``
and ``link_into``. Blocking work (stat, hashing, copying, renames) runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import secrets
import shutil
import stat
import time
import weakref
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import orjson
from traitlets import Bool, Dict, Float, Int, List, Unicode
from traitlets.config import LoggingConfigurable

from ..errors import ApiError, bad_request, conflict, not_found
from . import schema
from .fields import MAX_METADATA_BYTES, READ_ONLY_KEYS, check_metadata, check_tags
from .hashing import DirFacts, FileFacts, read_dir, read_fd, stat_facts
from .importer import copy_file, copy_tree
from .listing import ListQuery, list_page
from .paths import (
    TMP_DIR,
    check_name,
    check_relpath,
    locate,
    open_beneath,
    path_not_found,
    real_root,
    relative_to_root,
)
from .roots import GIB, Category, build_categories, prepare_folders, unknown_category
from .scanner import Hasher, ScanChanges, Scanner
from .sniff import DIRECTORY, Sniffed, detect, extension_allowed, unsupported_type
from .trash import move_to_trash, purge_slot, restore_from_trash, trash_usage
from .uploads import IMPORT_PREFIX, ResumableUploads

if TYPE_CHECKING:
    from ..services import Services

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
        self.uploads = ResumableUploads(self)
        self._commit_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._refreshes: dict[str, dict[str, Any]] = {}
        self.streams: weakref.WeakSet[Any] = weakref.WeakSet()  # uploads receiving a body
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
            deadline = time.monotonic() - self.upload_idle_timeout
            for handler in list(self.streams):
                if handler.last_activity < deadline:
                    log.info("closing an upload idle for %.0f s", self.upload_idle_timeout)
                    handler.close_idle()

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

    async def write(self, fn: Any) -> Any:
        """``store.write``, shielded: a cancelled caller never cancels a queued write."""
        return await asyncio.shield(self.store.write(fn))

    async def _row(self, asset_id: str) -> Any:
        if not _ID.fullmatch(asset_id or ""):
            raise not_found("no such asset")
        row = await self.store.read(lambda conn: conn.execute(
            "SELECT * FROM assets WHERE id = ?", (asset_id,)).fetchone())
        if row is None:
            raise not_found("no such asset")
        return row

    # -- reading -----------------------------------------------------------------------------

    async def category_of(self, asset_id: str) -> str:
        """The category of an asset (404 when there is none)."""
        return str((await self._row(asset_id))["category"])

    async def get(self, asset_id: str, *, manifest: bool = False) -> dict[str, Any]:
        row = await self._row(asset_id)
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
        usage = await self.store.read(_usage)
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
        rows = await self.store.read(lambda conn: _by_reference(conn, names, ref))
        if not rows:
            raise not_found(f"no asset matches {ref!r}")
        best = min(rank for rank, _ in rows)
        matches = [row for rank, row in rows if rank == best]
        if len(matches) > 1:
            ids = ", ".join(r["id"] for r in matches[:5])
            raise conflict(f"{ref!r} matches several assets ({ids}); use an id", "ambiguous")
        return self.public(matches[0])

    # -- registering files already in a root ------------------------------------------------

    async def register(self, category: str, rel_path: str, *, source: str = "register",
                       job_id: str | None = None, metadata: dict[str, Any] | None = None,
                       tags: list[str] | None = None) -> dict[str, Any]:
        """Register a file or folder inside a root (hashed in a thread); idempotent."""
        cat = self.category(category)
        rel = check_relpath(rel_path, allow_hidden=self.hidden_allowed)
        tags = check_tags(tags)
        metadata = check_metadata(metadata)
        path = await asyncio.to_thread(locate, cat.path, rel)
        await self.refuse_job_folder(path)
        mode = (await asyncio.to_thread(os.lstat, path)).st_mode
        if stat.S_ISDIR(mode):
            if not cat.accepts_directories:
                raise unsupported_type("this category does not take folders")
            facts = await asyncio.to_thread(
                read_dir, path, allow_hidden=self.hidden_allowed, link_ok=self._link_ok_sync,
                progress=self._progress(cat.name, rel))
            return await self._record_dir(cat, rel, facts, source=source, job_id=job_id,
                                          metadata=metadata, tags=tags)
        if not stat.S_ISREG(mode):
            raise path_not_found()
        facts = await asyncio.to_thread(self._read_registered_file, cat, rel,
                                        self._progress(cat.name, rel))
        sniffed = detect(rel.name, facts.head, facts.size <= len(facts.head), cat.types)
        return await self._record_file(cat, rel, facts, sniffed, source=source, job_id=job_id,
                                       metadata=metadata, tags=tags)

    async def register_path(self, path: Path, *, category: str, source: str = "register",
                            job_id: str | None = None, metadata: dict[str, Any] | None = None,
                            tags: list[str] | None = None) -> dict[str, Any]:
        """``register`` for an absolute path inside the category's root."""
        cat = self.category(category)
        rel = relative_to_root(cat.path, Path(path))
        return await self.register(category, rel.as_posix(), source=source, job_id=job_id,
                                   metadata=metadata, tags=tags)

    def _read_registered_file(self, cat: Category, rel: PurePosixPath,
                              progress: Any) -> FileFacts:
        fd = open_beneath(cat.path, rel)
        try:
            facts = read_fd(fd, digest=False)
            if facts.nlink > 1 and not self._link_ok_sync(facts.dev, facts.ino, facts.nlink):
                raise hard_link_refused()
            os.lseek(fd, 0, os.SEEK_SET)
            return read_fd(fd, progress=progress)
        finally:
            os.close(fd)

    def _link_ok_sync(self, dev: int, ino: int, nlink: int) -> bool:
        return self.store.read_sync(lambda conn: schema.own_link(conn, dev, ino, nlink))

    def _progress(self, category: str, rel: PurePosixPath) -> Any:
        """A thread-safe hashing progress reporter (files under ``progress_bytes`` are quiet)."""
        loop = asyncio.get_running_loop()

        def report(done: int, size: int) -> None:
            if size and size < self.progress_bytes:
                return
            data = {"category": category, "rel_path": rel.as_posix(), "done_bytes": done,
                    "total_bytes": size or None}
            loop.call_soon_threadsafe(self.publish, "register.progress", data)

        return report

    async def _record_file(self, cat: Category, rel: PurePosixPath, facts: FileFacts,
                           sniffed: Sniffed, *, source: str, job_id: str | None,
                           metadata: dict[str, Any], tags: list[str]) -> dict[str, Any]:
        values = _row_values(cat.name, rel, "file", facts.size, facts.mtime_ns, facts.sha256,
                             sniffed.format, sniffed.media_type, source, job_id, tags,
                             {**metadata, **sniffed.metadata()}, None)
        row = await self.write(lambda conn: _upsert(conn, values))
        asset = self.public(row)
        self.publish("asset.registered", asset)
        return await self._with_duplicates(asset)

    async def _record_dir(self, cat: Category, rel: PurePosixPath, facts: DirFacts, *,
                          source: str, job_id: str | None, metadata: dict[str, Any],
                          tags: list[str]) -> dict[str, Any]:
        meta = {**metadata, "files": len(facts.files)}
        values = _row_values(cat.name, rel, "dir", facts.size, facts.mtime_ns, facts.sha256,
                             DIRECTORY, "inode/directory", source, job_id, tags, meta,
                             orjson.dumps(facts.files))
        row = await self.write(lambda conn: _upsert(conn, values, folder=True))
        await self.scanner.drop(cat.name, rel.as_posix())
        asset = self.public(row)
        self.publish("asset.registered", asset)
        return await self._with_duplicates(asset)

    async def _with_duplicates(self, asset: dict[str, Any]) -> dict[str, Any]:
        await self.store.read(lambda conn: schema.duplicates_of(conn, [asset]))
        return asset

    # -- placing new files ---------------------------------------------------------------------

    async def place_file(self, cat: Category, name: str, staged: Path, *, sha256: str,
                         size: int, sniffed: Sniffed, overwrite: bool, source: str,
                         tags: list[str], metadata: dict[str, Any],
                         job_id: str | None = None) -> dict[str, Any]:
        """Move a complete, fsynced temp file to ``<root>/<name>`` and register it.

        The name is taken with ``link()`` (fails if it exists) then the temp name is
        removed: an existing file is never replaced silently; with ``overwrite`` the old
        version goes to the trash first.
        """
        rel = PurePosixPath(name)
        async with self._commit_lock:
            target = await asyncio.to_thread(locate, cat.path, rel, must_exist=False)
            if overwrite:
                await self._trash_existing(cat, rel)
            try:
                await asyncio.to_thread(_link_into_place, staged, target)
            except FileExistsError:
                raise name_exists() from None
            st = await asyncio.to_thread(os.stat, target, follow_symlinks=False)
            facts = stat_facts(st)
            facts.sha256 = sha256
            return await self._record_file(cat, rel, facts, sniffed, source=source,
                                           job_id=job_id, metadata=metadata, tags=tags)

    async def place_dir(self, cat: Category, name: str, staged: Path, *, source: str,
                        tags: list[str], metadata: dict[str, Any],
                        job_id: str | None = None) -> dict[str, Any]:
        rel = PurePosixPath(name)
        async with self._commit_lock:
            target = await asyncio.to_thread(locate, cat.path, rel, must_exist=False)
            if await asyncio.to_thread(os.path.lexists, target):
                raise name_exists()
            await asyncio.to_thread(os.rename, staged, target)
            facts = await asyncio.to_thread(read_dir, target, allow_hidden=self.hidden_allowed,
                                            link_ok=self._link_ok_sync)
            return await self._record_dir(cat, rel, facts, source=source, job_id=job_id,
                                          metadata=metadata, tags=tags)

    async def check_free(self, cat: Category, name: str, overwrite: bool) -> None:
        """409 early when a name is taken and overwriting was not asked for."""
        if overwrite:
            return
        target = await asyncio.to_thread(locate, cat.path, PurePosixPath(name),
                                         must_exist=False)
        if await asyncio.to_thread(os.path.lexists, target):
            raise name_exists()

    async def _trash_existing(self, cat: Category, rel: PurePosixPath) -> None:
        target = await asyncio.to_thread(locate, cat.path, rel, must_exist=False)
        if not await asyncio.to_thread(os.path.lexists, target):
            return
        row = await self.store.read(lambda conn: schema.get_by_path(conn, cat.name,
                                                                    rel.as_posix()))
        if row is None:
            await self.scanner.refresh(cat.name)
            row = await self.store.read(lambda conn: schema.get_by_path(conn, cat.name,
                                                                        rel.as_posix()))
        if row is None:
            raise name_exists()  # something we cannot register (a link, a hidden file...)
        await self._trash_row(cat, row)

    # -- linking (jobs) --------------------------------------------------------------------

    async def link_into(self, src: Path, category: str, name: str, *, source: str,
                        job_id: str | None, metadata: dict[str, Any] | None = None,
                        tags: list[str] | None = None) -> dict[str, Any]:
        """Hard-link (or copy across filesystems) ``src`` into a root under a fresh name."""
        cat = self.category(category)
        base = check_name(name, allow_hidden=False)
        src_path = await asyncio.to_thread(self._checked_source, Path(src))
        metadata = check_metadata(metadata)
        tags = check_tags(tags)
        async with self._commit_lock:
            rel = await asyncio.to_thread(self._free_name, cat, base)
            target = real_root(cat.path) / rel.name
            await asyncio.to_thread(self._link_tree, src_path, target)
        return await self.register(cat.name, rel.as_posix(), source=source, job_id=job_id,
                                   metadata=metadata, tags=tags)

    def _checked_source(self, src: Path) -> Path:
        """A source for ``link_into``: inside some root, no links, no foreign hard links."""
        for cat in self.categories.values():
            try:
                rel = relative_to_root(cat.path, src)
            except ApiError:
                continue
            rel = check_relpath(rel.as_posix(), allow_hidden=True)
            path = locate(cat.path, rel)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and not self._link_ok_sync(
                    st.st_dev, st.st_ino, st.st_nlink):
                raise hard_link_refused()
            return path
        raise path_not_found()

    def _free_name(self, cat: Category, name: str) -> PurePosixPath:
        root = real_root(cat.path)
        stem, dot, suffix = name.partition(".")
        candidate = name
        counter = 1
        while os.path.lexists(root / candidate):
            candidate = f"{stem}-{counter}{dot}{suffix}"
            counter += 1
        return PurePosixPath(check_name(candidate))

    def _link_tree(self, src: Path, target: Path) -> None:
        if src.is_dir():
            staging = target.with_name(f".{target.name}.linking")
            shutil.copytree(src, staging, symlinks=True, copy_function=self._link_one)
            os.rename(staging, target)
        else:
            self._link_one(src, target)

    def _link_one(self, src: str | Path, dst: str | Path) -> None:
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            shutil.copy2(src, dst, follow_symlinks=False)
            return
        st = os.lstat(dst)
        self.store.submit(lambda conn: schema.record_link(conn, st.st_dev, st.st_ino,
                                                          st.st_nlink)).result()

    # -- import from configured folders -------------------------------------------------------

    def import_source(self, raw: str, import_dir: int | None) -> tuple[Path, PurePosixPath]:
        """(import folder, relative path) of a requested import (thread); 403/404."""
        folders = [Path(d).expanduser() for d in self.import_dirs]
        if not folders:
            raise ApiError(403, "import_disabled", "no import folders are configured "
                                                   "(c.NotebenchAssetRegistry.import_dirs)")
        if not isinstance(raw, str) or not raw:
            raise bad_request("path is required", "invalid_path")
        if raw.startswith("/"):
            for folder in folders:
                base = Path(os.path.abspath(folder))
                candidate = PurePosixPath(raw)
                if candidate.is_relative_to(base) and candidate != PurePosixPath(base):
                    rel = check_relpath(candidate.relative_to(base).as_posix(),
                                        allow_hidden=self.hidden_allowed)
                    return folder, rel
            raise path_not_found()
        if import_dir is not None and not 0 <= import_dir < len(folders):
            raise bad_request("import_dir is not a configured folder's index")
        return folders[import_dir or 0], check_relpath(raw, allow_hidden=self.hidden_allowed)

    async def import_asset(self, body: dict[str, Any]) -> dict[str, Any]:
        """Copy a file or folder from an import folder into a root, hashed and registered."""
        cat = self.category(str(body.get("category", "")))
        import_dir = body.get("import_dir")
        if import_dir is not None and (not isinstance(import_dir, int)
                                       or isinstance(import_dir, bool)):
            raise bad_request("import_dir must be an integer index")
        base, rel = await asyncio.to_thread(self.import_source, body.get("path"), import_dir)
        name = check_name(body.get("name") or rel.name, allow_hidden=self.hidden_allowed)
        overwrite = bool(body.get("overwrite", False))
        tags = check_tags(body.get("tags"))
        metadata = check_metadata(body.get("metadata"))
        source = await asyncio.to_thread(locate, base, rel)
        st = await asyncio.to_thread(os.lstat, source)
        is_dir = stat.S_ISDIR(st.st_mode)
        if not is_dir and st.st_nlink > 1 and not await self.store.read(
                lambda conn: schema.own_link(conn, st.st_dev, st.st_ino, st.st_nlink)):
            raise hard_link_refused()
        if is_dir and not cat.accepts_directories:
            raise unsupported_type("this category does not take folders")
        if not is_dir and not extension_allowed(name, cat.types):
            raise unsupported_type("this kind of file is not allowed here")
        await self.check_free(cat, name, overwrite and not is_dir)
        staged = self.tmp_dir(cat) / f"{IMPORT_PREFIX}{secrets.token_hex(8)}"
        await asyncio.to_thread(staged.parent.mkdir, exist_ok=True)
        try:
            if is_dir:
                await asyncio.to_thread(copy_tree, source, staged, limit=cat.max_bytes,
                                        allow_hidden=self.hidden_allowed,
                                        link_ok=self._link_ok_sync)
                return await self.place_dir(cat, name, staged, source="import", tags=tags,
                                            metadata=metadata)
            copied = await asyncio.to_thread(copy_file, base, rel, staged, limit=cat.max_bytes,
                                             link_ok=self._link_ok_sync)
            sniffed = detect(name, copied.head, copied.size <= len(copied.head), cat.types)
            return await self.place_file(cat, name, staged, sha256=copied.sha256,
                                         size=copied.size, sniffed=sniffed,
                                         overwrite=overwrite, source="import", tags=tags,
                                         metadata=metadata)
        finally:
            await asyncio.to_thread(_remove_staged, staged)

    # -- edits -------------------------------------------------------------------------------

    async def update(self, asset_id: str, *, tags: list[str] | None,
                     metadata: dict[str, Any] | None) -> dict[str, Any]:
        """Replace tags; merge metadata (RFC 7396: a null value removes a key)."""
        await self._row(asset_id)
        new_tags = check_tags(tags) if tags is not None else None
        if metadata is not None:
            if not isinstance(metadata, dict):
                raise bad_request("metadata must be an object")
            if READ_ONLY_KEYS & set(metadata):
                raise bad_request(f"these metadata keys are set by notebench: "
                                  f"{sorted(READ_ONLY_KEYS & set(metadata))}", "read_only_key")

        def apply(conn: Any) -> Any:
            row = conn.execute("SELECT * FROM assets WHERE id = ?", (asset_id,)).fetchone()
            if row is None:
                raise not_found("no such asset")
            if metadata is not None:
                merged = _merge_patch(orjson.loads(row["metadata"]), metadata)
                encoded = orjson.dumps(merged)
                if len(encoded) > MAX_METADATA_BYTES:
                    raise bad_request("metadata is too large")
                conn.execute("UPDATE assets SET metadata = ? WHERE id = ?",
                             (encoded.decode(), asset_id))
            if new_tags is not None:
                conn.execute("UPDATE assets SET tags = ? WHERE id = ?",
                             (orjson.dumps(new_tags).decode(), asset_id))
                schema.set_tags(conn, asset_id, new_tags)
            conn.execute("UPDATE assets SET updated = ? WHERE id = ?", (time.time(), asset_id))
            return conn.execute("SELECT * FROM assets WHERE id = ?", (asset_id,)).fetchone()

        asset = self.public(await self.write(apply))
        self.publish("asset.updated", asset)
        return await self._with_duplicates(asset)

    # -- trash -------------------------------------------------------------------------------

    async def delete(self, asset_id: str) -> dict[str, Any]:
        """Move an asset to its root's trash (a missing one is just forgotten)."""
        row = await self._row(asset_id)
        if row["state"] == "trashed":
            raise not_found("the asset is already in the trash")
        cat = self.category(row["category"])
        async with self._commit_lock:
            if row["state"] == "missing":
                await self.write(lambda conn: schema.delete_asset(conn, asset_id))
                asset = {**self.public(row), "state": "removed"}
                self.publish("asset.removed", asset)
                return asset
            asset = await self._trash_row(cat, row)
        return asset

    async def _trash_row(self, cat: Category, row: Any) -> dict[str, Any]:
        asset = self.public(row)
        rel = PurePosixPath(row["rel_path"])
        await self.refuse_job_folder(cat.path / rel)
        try:
            trash_path = await asyncio.to_thread(move_to_trash, cat, rel, asset)
        except ApiError:
            await self.write(lambda conn: conn.execute(
                "UPDATE assets SET state = 'missing' WHERE id = ?", (row["id"],)))
            raise
        now = time.time()
        updated = await self.write(lambda conn: _set_trashed(conn, row["id"], now,
                                                                   trash_path))
        if row["kind"] == "dir":
            await self.scanner.drop(cat.name, row["rel_path"])
        asset = self.public(updated)
        self.publish("asset.trashed", asset)
        return asset

    async def list_trash(self, category: str | None = None) -> dict[str, Any]:
        if category is not None:
            self.category(category)
        rows = await self.store.read(lambda conn: conn.execute(
            schema.SELECT + " WHERE state = 'trashed' AND (? IS NULL OR category = ?) "
            "ORDER BY trashed_at DESC, id", (category, category)).fetchall())
        items = [self.public(r) for r in rows if r["category"] in self.categories]
        usage = {}
        for name, cat in self.categories.items():
            if category is None or name == category:
                files, size = await asyncio.to_thread(trash_usage, cat)
                usage[name] = {"files": files, "bytes": size}
        return {"items": items, "usage": usage, "retention_days": self.trash_retention_days}

    async def restore(self, asset_id: str) -> dict[str, Any]:
        row = await self._trash_row_of(asset_id)
        cat = self.category(row["category"])
        rel = PurePosixPath(row["rel_path"])
        async with self._commit_lock:
            other = await self.store.read(lambda conn: schema.get_by_path(conn, cat.name,
                                                                          rel.as_posix()))
            if other is not None and other["state"] == "present":
                raise name_exists("an asset with this path exists; delete or rename it first")
            await asyncio.to_thread(restore_from_trash, cat, asset_id, rel)

            def apply(conn: Any) -> Any:
                if other is not None:
                    schema.delete_asset(conn, other["id"])
                conn.execute("UPDATE assets SET state = 'present', trashed_at = NULL, "
                             "trash_path = NULL, updated = ? WHERE id = ?",
                             (time.time(), asset_id))
                return schema.get_row(conn, asset_id)

            updated = await self.write(apply)
        if row["kind"] == "dir":
            await self.scanner.drop(cat.name, row["rel_path"])
        asset = self.public(updated)
        self.publish("asset.restored", asset)
        return await self._with_duplicates(asset)

    async def purge(self, asset_id: str) -> dict[str, Any]:
        row = await self._trash_row_of(asset_id)
        cat = self.category(row["category"])
        await asyncio.to_thread(purge_slot, cat, asset_id)
        await self.write(lambda conn: schema.delete_asset(conn, asset_id))
        asset = {**self.public(row), "state": "purged"}
        self.publish("asset.purged", {"id": asset_id, "category": cat.name})
        return asset

    async def purge_trash(self, *, older_than_days: float | None = None,
                          category: str | None = None) -> dict[str, Any]:
        days = self.trash_retention_days if older_than_days is None else older_than_days
        if days < 0:
            raise bad_request("older_than_days must not be negative")
        if category is not None:
            self.category(category)
        cutoff = time.time() - days * 86400
        rows = await self.store.read(lambda conn: conn.execute(
            "SELECT id, category FROM assets WHERE state = 'trashed' AND trashed_at <= ? "
            "AND (? IS NULL OR category = ?)", (cutoff, category, category)).fetchall())
        purged = []
        for row in rows:
            if row["category"] not in self.categories:
                continue
            await self.purge(row["id"])
            purged.append(row["id"])
        return {"purged": purged, "older_than_days": days}

    async def _trash_row_of(self, asset_id: str) -> Any:
        row = await self._row(asset_id)
        if row["state"] != "trashed":
            raise not_found("the asset is not in the trash")
        self.category(row["category"])
        return row


# -- helpers ---------------------------------------------------------------------------------


def name_exists(message: str = "a file with this name exists (send overwrite=true to move "
                               "it to the trash)") -> ApiError:
    return conflict(message, "name_exists")


def job_folder_refused() -> ApiError:
    return ApiError(403, "job_directory",
                    "the jobs folder and job directories belong to the jobs, not to the "
                    "asset registry (a job's files are registered by the job; trash a job "
                    "with DELETE lifecycle/jobs/{id})")


def hard_link_refused() -> ApiError:
    return ApiError(403, "hard_link_refused",
                    "the file has other hard links (they may lead outside the root)")


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _row_values(category: str, rel: PurePosixPath, kind: str, size: int, mtime_ns: int,
                sha256: str | None, fmt: str | None, media_type: str | None, source: str,
                job_id: str | None, tags: list[str], metadata: dict[str, Any],
                manifest: bytes | None) -> dict[str, Any]:
    now = time.time()
    parent = rel.parent.as_posix()
    return {"id": secrets.token_hex(8), "category": category, "rel_path": rel.as_posix(),
            "dir": "" if parent == "." else parent, "name": rel.name, "kind": kind,
            "size": size, "mtime_ns": mtime_ns, "sha256": sha256, "format": fmt,
            "media_type": media_type, "state": "present", "source": source, "job_id": job_id,
            "tags": orjson.dumps(tags).decode(), "metadata": orjson.dumps(metadata).decode(),
            "manifest": manifest, "created": now, "updated": now}


def _upsert(conn: Any, values: dict[str, Any], *, folder: bool = False) -> Any:
    """Insert, or update the live row at the same path (keeping its id and created)."""
    existing = schema.get_by_path(conn, values["category"], values["rel_path"])
    if folder:
        prefix = values["rel_path"] + "/"
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        for row in conn.execute(
            "SELECT id FROM assets WHERE category = ? AND rel_path LIKE ? ESCAPE '\\' "
            "AND state != 'trashed'", (values["category"], escaped + "%")
        ).fetchall():
            schema.delete_asset(conn, row["id"])
    if existing is None:
        schema.insert_asset(conn, values)
        return schema.get_row(conn, values["id"])
    old_meta = orjson.loads(existing["metadata"])
    merged = {**old_meta, **orjson.loads(values["metadata"])}
    old_tags = orjson.loads(existing["tags"])
    tags = old_tags + [t for t in orjson.loads(values["tags"]) if t not in old_tags]
    conn.execute(
        "UPDATE assets SET kind = ?, size = ?, mtime_ns = ?, sha256 = ?, format = ?, "
        "media_type = ?, state = 'present', source = CASE WHEN source = 'scan' THEN ? ELSE "
        "source END, job_id = COALESCE(?, job_id), tags = ?, metadata = ?, manifest = ?, "
        "updated = ? WHERE id = ?",
        (values["kind"], values["size"], values["mtime_ns"], values["sha256"],
         values["format"], values["media_type"], values["source"], values["job_id"],
         orjson.dumps(tags).decode(), orjson.dumps(merged).decode(), values["manifest"],
         values["updated"], existing["id"]),
    )
    schema.set_tags(conn, existing["id"], tags)
    return schema.get_row(conn, existing["id"])


def _set_trashed(conn: Any, asset_id: str, now: float, trash_path: str) -> Any:
    conn.execute("UPDATE assets SET state = 'trashed', trashed_at = ?, trash_path = ?, "
                 "updated = ? WHERE id = ?", (now, trash_path, now, asset_id))
    return schema.get_row(conn, asset_id)


def _link_into_place(staged: Path, target: Path) -> None:
    os.link(staged, target)
    os.unlink(staged)
    fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_staged(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _usage(conn: Any) -> dict[str, dict[str, int]]:
    usage: dict[str, dict[str, int]] = {}
    for row in conn.execute(
        "SELECT category, state, COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes, "
        "SUM(CASE WHEN sha256 IS NULL AND state = 'present' THEN 1 ELSE 0 END) AS pending "
        "FROM assets GROUP BY category, state"
    ):
        entry = usage.setdefault(row["category"], {})
        entry[row["state"]] = row["n"]
        if row["state"] == "present":
            entry["bytes"] = row["bytes"]
            entry["pending"] = row["pending"]
    return usage


def _disk(category: Category) -> dict[str, int | None]:
    try:
        usage = shutil.disk_usage(category.path)
    except OSError:
        return {"free_bytes": None, "total_bytes": None}
    return {"free_bytes": usage.free, "total_bytes": usage.total}


def _by_reference(conn: Any, categories: list[str], ref: str) -> list[tuple[int, Any]]:
    marks = ",".join("?" * len(categories))
    rows = conn.execute(
        f"SELECT * FROM assets WHERE category IN ({marks}) AND state = 'present' AND "
        "(rel_path = ? OR name = ? OR substr(name, 1, ?) = ?)",
        (*categories, ref, ref, len(ref) + 1, ref + "."),
    ).fetchall()
    ranked = []
    for row in rows:
        rank = 0 if row["rel_path"] == ref else 1 if row["name"] == ref else 2
        ranked.append((rank, row))
    return ranked
