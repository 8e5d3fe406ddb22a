"""Resumable uploads (an offset protocol), and clearing what a crash left behind.

``POST assets/uploads`` records the name, size and digest and creates an empty part file
in the root's temp folder; each ``PATCH`` appends a chunk at the offset the client says
(it must equal the offset reached, else 409 with the right one); ``HEAD`` tells the
offset; ``complete`` checks size, digest and type, then places the file like a
single-shot upload. The offset is recorded only after an fsync, so after a crash the
part file is cut back to it. The running sha256 is kept in memory between chunks; after
a restart it is computed from the part file at completion.

Each user may hold ``NotebenchApp.upload_sessions_per_user`` unfinished uploads (429 past it)
declaring ``upload_session_bytes_per_user`` bytes in all (413 past it); the count covers the
uploads this server started (those left by an earlier one expire).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ApiError, bad_request, not_found
from ..resumable import (
    UPLOAD_ID_PATTERN,
    check_digest,
    checksum_mismatch,
    digest_mismatch,
    incomplete,
    is_upload_id,
    new_upload_id,
    offset_mismatch,
    upload_busy,
)
from .fields import check_metadata, check_tags
from .paths import check_name
from .sink import FileSink, too_large
from .sniff import HEAD_BYTES, detect, extension_allowed, unsupported_type

if TYPE_CHECKING:
    from .ports import AssetCore

__all__ = ["UPLOAD_ID_PATTERN", "ResumableUploads", "check_digest", "digest_mismatch"]

STREAM_PREFIX = "up-"
RESUMABLE_PREFIX = "res-"
IMPORT_PREFIX = "imp-"


class ChunkDigest:
    """The sink's hasher for a chunk sent with a checksum (tus ``Upload-Checksum``): it feeds
    the upload's running sha256 (None when unknown) and the chunk's own, in the sink's
    worker thread, and keeps the running one's state from before the chunk."""

    def __init__(self, running: Any, expected: bytes) -> None:
        self.running = running
        self.before = running.copy() if running is not None else None
        self.expected = expected
        self.chunk = hashlib.sha256()

    def update(self, data: bytes) -> None:
        if self.running is not None:
            self.running.update(data)
        self.chunk.update(data)

    def hexdigest(self) -> str:
        return self.running.hexdigest() if self.running is not None else ""

    def matches(self) -> bool:
        return self.chunk.digest() == self.expected


class ResumableUploads:
    """The ``asset_uploads`` rows, their part files and running hashes."""

    def __init__(self, registry: AssetCore) -> None:
        self.registry = registry
        self.store = registry.store
        self._hashers: dict[str, tuple[int, Any]] = {}
        self._active: set[str] = set()
        self._owners: dict[str, tuple[str, int]] = {}  # uid -> (user, declared size)

    # -- records -----------------------------------------------------------------------------

    def _reserve(self, uid: str, user: str, size: int) -> None:
        """Count a new upload against its user's limits (before any await: no race)."""
        config = self.registry.services.config
        max_sessions = config.upload_sessions_per_user
        max_bytes = config.upload_session_bytes_per_user
        mine = [declared for owner, declared in self._owners.values() if owner == user]
        if max_sessions and len(mine) >= max_sessions:
            raise ApiError(429, "too_many_uploads",
                           f"at most {max_sessions} unfinished resumable uploads per user; "
                           "complete or delete one first", max_sessions=max_sessions)
        if max_bytes and sum(mine) + size > max_bytes:
            raise ApiError(413, "upload_quota_exceeded",
                           f"unfinished resumable uploads may declare {max_bytes} bytes in "
                           "all per user", max_bytes=max_bytes)
        self._owners[uid] = (user, size)

    async def create(self, body: dict[str, Any], user: str = "") -> dict[str, Any]:
        registry = self.registry
        cat = registry.category(str(body.get("category", "")))
        name = check_name(body.get("name", ""), allow_hidden=registry.hidden_allowed)
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad_request("size must be a non-negative integer")
        if size > cat.max_bytes:
            raise too_large(cat.max_bytes)
        if not extension_allowed(name, cat.types):
            raise unsupported_type("this kind of file is not allowed here")
        digest = check_digest(body.get("sha256"))
        overwrite = bool(body.get("overwrite", False))
        tags = check_tags(body.get("tags"))
        metadata = check_metadata(body.get("metadata"))
        uid = new_upload_id()
        self._reserve(uid, user, size)
        try:
            await registry.check_free(cat, name, overwrite)
            part = registry.tmp_dir(cat) / f"{RESUMABLE_PREFIX}{uid}.part"
            await asyncio.to_thread(_create_empty, part)
            now = time.time()
            await self.registry.write(lambda conn: conn.execute(
                "INSERT INTO asset_uploads (id, category, name, size, sha256, received, "
                "overwrite, tags, metadata, part_path, created, updated) VALUES (?, ?, ?, ?, "
                "?, 0, ?, ?, ?, ?, ?, ?)",
                (uid, cat.name, name, size, digest, int(overwrite), orjson.dumps(tags).decode(),
                 orjson.dumps(metadata).decode(), str(part), now, now)))
        except BaseException:
            self._owners.pop(uid, None)
            raise
        self._hashers[uid] = (0, hashlib.sha256())
        return await self.status(uid)

    async def _row(self, uid: str) -> Any:
        if not is_upload_id(uid):
            raise not_found("no such upload")
        row = await self.store.read(lambda conn: conn.execute(
            "SELECT * FROM asset_uploads WHERE id = ?", (uid,)).fetchone())
        if row is None:
            raise not_found("no such upload (finished, aborted or expired)")
        return row

    async def status(self, uid: str) -> dict[str, Any]:
        row = await self._row(uid)
        return self._public(row)

    def _public(self, row: Any) -> dict[str, Any]:
        expiry = self.registry.upload_expiry_hours * 3600
        return {"id": row["id"], "category": row["category"], "name": row["name"],
                "size": row["size"], "offset": row["received"], "sha256": row["sha256"],
                "overwrite": bool(row["overwrite"]), "created": row["created"],
                "updated": row["updated"], "expires": row["updated"] + expiry}

    # -- chunks ------------------------------------------------------------------------------

    async def open_chunk(self, uid: str, offset: int,
                         checksum: bytes | None = None) -> tuple[FileSink, Any]:
        """Start a chunk at ``offset``: the sink to stream into (the upload is held busy).
        With ``checksum`` (the chunk's sha256) the chunk is kept only if it matches."""
        row = await self._row(uid)
        if uid in self._active:
            raise upload_busy("another request is sending to this upload")
        if offset != row["received"]:
            raise offset_mismatch(row["received"])
        cat = self.registry.category(row["category"])
        cached = self._hashers.get(uid)
        hasher = cached[1] if cached is not None and cached[0] == offset else None
        check = None
        if offset == 0:
            name = row["name"]

            def check(head: bytes, complete: bool) -> Any:
                return detect(name, head, complete, cat.types)

        running = hasher if hasher is not None else (hashlib.sha256() if offset == 0 else None)
        if running is None:
            self._hashers.pop(uid, None)
        sink = FileSink(Path(row["part_path"]), limit=row["size"], type_check=check,
                        batch_bytes=self.registry.upload_batch_bytes, offset=offset,
                        hasher=running if checksum is None else
                        ChunkDigest(running, checksum))  # type: ignore[arg-type]
        self._active.add(uid)
        try:
            await sink.open(create=False)
        except OSError:
            self._active.discard(uid)
            raise not_found("the upload's data is gone") from None
        return sink, row

    async def close_chunk(self, uid: str, sink: FileSink, *,
                          whole: bool = False) -> dict[str, Any]:
        """End a chunk (``whole``, or cut off): fsync, record the offset reached, release.

        A chunk sent with a checksum is kept only whole and matching: otherwise it is
        dropped (the offset stays), and a whole one that does not match raises 460."""
        check = sink.hasher if isinstance(sink.hasher, ChunkDigest) else None
        try:
            if check is not None:
                await sink.flush()
                if not (whole and check.matches()):
                    await self._rewind(uid, sink, check)
                    if whole:
                        raise checksum_mismatch()
                    return await self.status(uid)
            await sink.sync()
            await sink.close(remove=False)
            reached = sink.written
            hasher = check.running if check is not None else sink.hasher
            if hasher is not None:
                self._hashers[uid] = (reached, hasher)
            now = time.time()
            await self.registry.write(lambda conn: conn.execute(
                "UPDATE asset_uploads SET received = ?, updated = ? WHERE id = ?",
                (reached, now, uid)))
        finally:
            self._active.discard(uid)
        return await self.status(uid)

    async def _rewind(self, uid: str, sink: FileSink, check: ChunkDigest) -> None:
        """Drop a chunk: the part file cut back to where it began, the hash state restored."""
        await sink.close(remove=False)
        await asyncio.to_thread(os.truncate, sink.path, sink.offset)
        if check.before is not None:
            self._hashers[uid] = (sink.offset, check.before)
        else:
            self._hashers.pop(uid, None)

    async def fail_chunk(self, uid: str, sink: FileSink) -> None:
        """A chunk refused (type, size): the upload is dropped with its data."""
        await sink.close(remove=False)
        self._active.discard(uid)
        await self.abort(uid)

    # -- end ---------------------------------------------------------------------------------

    async def complete(self, uid: str) -> dict[str, Any]:
        row = await self._row(uid)
        if uid in self._active:
            raise upload_busy("a chunk is still being received")
        if row["received"] != row["size"]:
            raise incomplete(row["received"], row["size"])
        registry = self.registry
        cat = registry.category(row["category"])
        part = Path(row["part_path"])
        self._active.add(uid)
        try:
            cached = self._hashers.get(uid)
            if cached is not None and cached[0] == row["size"]:
                digest = cached[1].copy().hexdigest()
                head = await asyncio.to_thread(_head, part)
            else:
                digest, head = await asyncio.to_thread(_hash_part, part)
            if row["sha256"] and row["sha256"] != digest:
                await self._drop(uid, part)
                raise digest_mismatch(row["sha256"], digest)
            try:
                sniffed = detect(row["name"], head, row["size"] <= len(head), cat.types)
            except ApiError:
                await self._drop(uid, part)
                raise
            asset = await registry.place_file(
                cat, row["name"], part, sha256=digest, size=row["size"], sniffed=sniffed,
                overwrite=bool(row["overwrite"]), source="upload",
                tags=orjson.loads(row["tags"]),
                metadata=check_metadata(orjson.loads(row["metadata"])))
            await self.registry.write(lambda conn: conn.execute(
                "DELETE FROM asset_uploads WHERE id = ?", (uid,)))
            self._hashers.pop(uid, None)
            self._owners.pop(uid, None)
            return asset
        finally:
            self._active.discard(uid)

    async def abort(self, uid: str) -> None:
        row = await self._row(uid)
        if uid in self._active:
            raise upload_busy("a chunk is still being received")
        await self._drop(uid, Path(row["part_path"]))

    async def _drop(self, uid: str, part: Path) -> None:
        await self.registry.write(lambda conn: conn.execute(
            "DELETE FROM asset_uploads WHERE id = ?", (uid,)))
        self._hashers.pop(uid, None)
        self._owners.pop(uid, None)
        await asyncio.to_thread(_unlink, part)

    async def expire(self) -> list[str]:
        """Delete uploads untouched for ``upload_expiry_hours``."""
        cutoff = time.time() - self.registry.upload_expiry_hours * 3600
        rows = await self.store.read(lambda conn: conn.execute(
            "SELECT id, part_path FROM asset_uploads WHERE updated < ?", (cutoff,)).fetchall())
        expired = []
        for row in rows:
            if row["id"] in self._active:
                continue
            await self._drop(row["id"], Path(row["part_path"]))
            expired.append(row["id"])
        return expired

    async def recover(self) -> None:
        """At start: remove temp files a crash left; cut resumable parts to their offsets."""
        rows = await self.store.read(lambda conn: conn.execute(
            "SELECT id, part_path, received FROM asset_uploads").fetchall())
        known = {row["part_path"]: row for row in rows}
        gone: list[str] = []
        for cat in self.registry.categories.values():
            tmp = self.registry.tmp_dir(cat)
            await asyncio.to_thread(_clear_tmp, tmp, known)
        for row in rows:
            if not await asyncio.to_thread(os.path.isfile, row["part_path"]):
                gone.append(row["id"])
        if gone:
            await self.registry.write(lambda conn: conn.executemany(
                "DELETE FROM asset_uploads WHERE id = ?", [(uid,) for uid in gone]))


def _create_empty(path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    os.close(fd)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(HEAD_BYTES)


def _hash_part(path: Path) -> tuple[str, bytes]:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        head = handle.read(HEAD_BYTES)
        hasher.update(head)
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest(), head


def _clear_tmp(tmp: Path, known: dict[str, Any]) -> None:
    import shutil

    if not tmp.is_dir():
        return
    for entry in os.scandir(tmp):
        path = os.path.join(tmp, entry.name)
        row = known.get(path)
        if row is not None:
            with contextlib.suppress(OSError):
                if os.path.getsize(path) > row["received"]:
                    os.truncate(path, row["received"])
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path, ignore_errors=True)
        else:
            _unlink(Path(path))
