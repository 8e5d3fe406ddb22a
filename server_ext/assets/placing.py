"""``Placement``: registering files and folders already in a root, and placing new ones
(staged temp files and folders) under their names, hashed and recorded."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import orjson

from . import repository, schema
from .fields import check_metadata, check_tags
from .hashing import DirFacts, FileFacts, read_dir, read_fd, stat_facts
from .paths import (
    check_relpath,
    hard_link_refused,
    locate,
    name_exists,
    open_beneath,
    path_not_found,
    relative_to_root,
)
from .sniff import DIRECTORY, Sniffed, detect, unsupported_type

if TYPE_CHECKING:
    from .ports import AssetCore
    from .roots import Category


class Placement:
    """Turns files on disk into rows (``registry.placement``)."""

    def __init__(self, core: AssetCore) -> None:
        self.core = core

    # -- registering files already in a root ------------------------------------------------

    async def register(self, category: str, rel_path: str, *, source: str = "register",
                       job_id: str | None = None, metadata: dict[str, Any] | None = None,
                       tags: list[str] | None = None) -> dict[str, Any]:
        """Register a file or folder inside a root (hashed in a thread); idempotent."""
        core = self.core
        cat = core.category(category)
        rel = check_relpath(rel_path, allow_hidden=core.hidden_allowed)
        tags = check_tags(tags)
        metadata = check_metadata(metadata)
        path = await asyncio.to_thread(locate, cat.path, rel)
        await core.refuse_job_folder(path)
        mode = (await asyncio.to_thread(os.lstat, path)).st_mode
        if stat.S_ISDIR(mode):
            if not cat.accepts_directories:
                raise unsupported_type("this category does not take folders")
            facts = await asyncio.to_thread(
                read_dir, path, allow_hidden=core.hidden_allowed, link_ok=core.link_ok_sync,
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
        cat = self.core.category(category)
        rel = relative_to_root(cat.path, Path(path))
        return await self.register(category, rel.as_posix(), source=source, job_id=job_id,
                                   metadata=metadata, tags=tags)

    def _read_registered_file(self, cat: Category, rel: PurePosixPath,
                              progress: Any) -> FileFacts:
        fd = open_beneath(cat.path, rel)
        try:
            facts = read_fd(fd, digest=False)
            if facts.nlink > 1 and not self.core.link_ok_sync(facts.dev, facts.ino,
                                                              facts.nlink):
                raise hard_link_refused()
            os.lseek(fd, 0, os.SEEK_SET)
            return read_fd(fd, progress=progress)
        finally:
            os.close(fd)

    def _progress(self, category: str, rel: PurePosixPath) -> Callable[[int, int], None]:
        """A thread-safe hashing progress reporter (files under ``progress_bytes`` are quiet)."""
        loop = asyncio.get_running_loop()
        core = self.core

        def report(done: int, size: int) -> None:
            if size and size < core.progress_bytes:
                return
            data = {"category": category, "rel_path": rel.as_posix(), "done_bytes": done,
                    "total_bytes": size or None}
            loop.call_soon_threadsafe(core.publish, "register.progress", data)

        return report

    async def _record_file(self, cat: Category, rel: PurePosixPath, facts: FileFacts,
                           sniffed: Sniffed, *, source: str, job_id: str | None,
                           metadata: dict[str, Any], tags: list[str]) -> dict[str, Any]:
        values = repository.row_values(
            cat.name, rel, "file", facts.size, facts.mtime_ns, facts.sha256, sniffed.format,
            sniffed.media_type, source, job_id, tags, {**metadata, **sniffed.metadata()}, None)
        row = await self.core.write(lambda conn: repository.upsert(conn, values))
        return await self._announce(row)

    async def _record_dir(self, cat: Category, rel: PurePosixPath, facts: DirFacts, *,
                          source: str, job_id: str | None, metadata: dict[str, Any],
                          tags: list[str]) -> dict[str, Any]:
        meta = {**metadata, "files": len(facts.files)}
        values = repository.row_values(
            cat.name, rel, "dir", facts.size, facts.mtime_ns, facts.sha256, DIRECTORY,
            "inode/directory", source, job_id, tags, meta, orjson.dumps(facts.files))
        row = await self.core.write(lambda conn: repository.upsert(conn, values, folder=True))
        await self.core.drop_folder(cat.name, rel.as_posix())
        return await self._announce(row)

    async def _announce(self, row: Any) -> dict[str, Any]:
        asset = self.core.public(row)
        self.core.publish("asset.registered", asset)
        return await self.core.with_duplicates(asset)

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
        async with self.core.commit_lock:
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
        core = self.core
        async with core.commit_lock:
            target = await asyncio.to_thread(locate, cat.path, rel, must_exist=False)
            if await asyncio.to_thread(os.path.lexists, target):
                raise name_exists()
            await asyncio.to_thread(os.rename, staged, target)
            facts = await asyncio.to_thread(read_dir, target, allow_hidden=core.hidden_allowed,
                                            link_ok=core.link_ok_sync)
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
        core = self.core
        target = await asyncio.to_thread(locate, cat.path, rel, must_exist=False)
        if not await asyncio.to_thread(os.path.lexists, target):
            return
        row = await core.store.read(lambda conn: schema.get_by_path(conn, cat.name,
                                                                    rel.as_posix()))
        if row is None:
            await core.rescan(cat.name)
            row = await core.store.read(lambda conn: schema.get_by_path(conn, cat.name,
                                                                        rel.as_posix()))
        if row is None:
            raise name_exists()  # something we cannot register (a link, a hidden file...)
        await core.trash_row(cat, row)


def _link_into_place(staged: Path, target: Path) -> None:
    os.link(staged, target)
    os.unlink(staged)
    fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
