"""Serving an asset: the response plan (status, headers, ranges) and the chunk reader.

Not Tornado's ``StaticFileHandler``: it resolves with ``abspath`` (links lead out of the
root) and hashes whole files on the loop for its ETag. Here the file is opened without
following links, the ETag is the stored sha256 (only while size and mtime still match
what was hashed; otherwise none is sent and the file is queued for hashing again). The
handler sends the body with ``sendfile`` where the connection allows it (``sendfile.py``);
otherwise reads run in a thread, one chunk ahead of the socket (``read_chunks``). A folder
asset is sent as a zip archive generated while it is sent (``archive.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import orjson

from ..disposition import content_disposition
from ..errors import ApiError, not_found
from .archive import zip_pieces
from .paths import check_relpath, locate, open_beneath
from .schema import own_link

if TYPE_CHECKING:
    from .registry import NotebenchAssetRegistry

CHUNK = 1 << 20
MAX_RANGES = 16


class RangeNotSatisfiable(Exception):
    pass


@dataclass
class DownloadPlan:
    status: int
    headers: dict[str, str]
    fd: int | None = None
    ranges: list[tuple[int, int]] = field(default_factory=list)  # [start, end)
    boundary: str | None = None
    size: int = 0
    part_type: str = "application/octet-stream"
    error: ApiError | None = None
    archive: Callable[[], Iterator[bytes]] | None = None  # a folder: its zip, in pieces

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """Byte ranges ``[start, end)`` of a ``Range`` header; None to ignore it.

    Raises ``RangeNotSatisfiable`` when the header is malformed or no range fits.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    ranges: list[tuple[int, int]] = []
    for part in spec.split(","):
        first, dash, last = part.strip().partition("-")
        first, last = first.strip(), last.strip()
        if not dash or (first and not first.isdigit()) or (last and not last.isdigit()):
            raise RangeNotSatisfiable
        if not first:
            if not last:
                raise RangeNotSatisfiable
            length = int(last)
            if length == 0:
                continue
            ranges.append((max(0, size - length), size))
            continue
        start = int(first)
        if last and int(last) < start:
            raise RangeNotSatisfiable
        if start >= size:
            continue
        end = min(int(last) + 1, size) if last else size
        ranges.append((start, end))
    if not ranges or len(ranges) > MAX_RANGES:
        raise RangeNotSatisfiable
    ranges.sort()
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _etag_matches(header: str | None, etag: str | None) -> bool:
    if not header or etag is None:
        return False
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates


async def plan_download(registry: NotebenchAssetRegistry, asset_id: str,
                        request_headers: Mapping[str, str]) -> DownloadPlan:
    row = await registry.row(asset_id)
    if row["state"] != "present":
        raise not_found("the asset is in the trash" if row["state"] == "trashed"
                        else "the asset's file is missing")
    if row["kind"] == "dir":
        return await _plan_folder(registry, row)
    category = registry.category(row["category"])
    fd = await asyncio.to_thread(open_beneath, category.path, PurePosixPath(row["rel_path"]))
    plan = DownloadPlan(200, {}, fd)
    try:
        await _fill(plan, registry, row, request_headers)
    except BaseException:
        plan.close()
        raise
    return plan


async def _fill(plan: DownloadPlan, registry: NotebenchAssetRegistry, row: Any,
                request_headers: Mapping[str, str]) -> None:
    assert plan.fd is not None
    st = os.fstat(plan.fd)
    if not stat.S_ISREG(st.st_mode):
        raise not_found("the asset's file is missing")
    if st.st_nlink > 1 and not await registry.store.read(
            lambda conn: own_link(conn, st.st_dev, st.st_ino, st.st_nlink)):
        raise ApiError(403, "hard_link_refused",
                       "the file has other hard links (they may lead outside the root)")
    size = plan.size = st.st_size
    fresh = row["sha256"] is not None and row["size"] == size and row["mtime_ns"] == \
        st.st_mtime_ns
    if not fresh and not registry.read_only:
        await registry.write(lambda conn: conn.execute(
            "UPDATE assets SET size = ?, mtime_ns = ?, sha256 = NULL WHERE id = ?",
            (size, st.st_mtime_ns, row["id"])))
        registry.hasher.wake()
    etag = f'"{row["sha256"]}"' if fresh else None
    media_type = row["media_type"] or "application/octet-stream"
    headers = plan.headers
    headers.update({
        "Content-Type": media_type,
        "Content-Disposition": content_disposition(row["name"]),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Last-Modified": formatdate(st.st_mtime, usegmt=True),
    })
    if etag is not None:
        headers["ETag"] = etag
    if _etag_matches(request_headers.get("If-None-Match"), etag):
        plan.status = 304
        return
    range_header = request_headers.get("Range")
    if_range = request_headers.get("If-Range")
    if range_header and if_range is not None and if_range.strip() != (etag or ""):
        range_header = None  # the client's copy is stale: send everything
    ranges = None
    if range_header:
        try:
            ranges = parse_ranges(range_header, size)
        except RangeNotSatisfiable:
            plan.status = 416
            headers["Content-Range"] = f"bytes */{size}"
            headers["Content-Type"] = "application/json"
            plan.error = ApiError(416, "range_not_satisfiable",
                                  f"no requested range fits the {size} bytes of the file")
            return
    if ranges is None:
        plan.ranges = [(0, size)] if size else []
        headers["Content-Length"] = str(size)
        return
    plan.status = 206
    plan.ranges = ranges
    if len(ranges) == 1:
        start, end = ranges[0]
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        return
    plan.boundary = secrets.token_hex(12)
    headers["Content-Type"] = f"multipart/byteranges; boundary={plan.boundary}"
    total = sum(len(_part_head(plan, media_type, s, e)) + (e - s) + 2 for s, e in ranges)
    headers["Content-Length"] = str(total + len(_closing(plan)))
    plan.part_type = media_type


async def _plan_folder(registry: NotebenchAssetRegistry, row: Any) -> DownloadPlan:
    """A folder asset: the zip of its manifest's files (checked now, opened while sent)."""
    root = registry.category(row["category"]).path
    folder = PurePosixPath(row["rel_path"])
    members = [str(entry["path"]) for entry in orjson.loads(row["manifest"] or b"[]")]
    allow_hidden = registry.hidden_allowed

    def member_fd(path: str) -> int:
        fd = open_beneath(root, folder / _member_path(path, allow_hidden))
        try:
            _check_member(registry, path, os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def check_all() -> None:
        base = locate(root, folder)
        paths = [_member_path(path, allow_hidden) for path in members]
        for parent in sorted({p for rel in paths for p in rel.parents if p.parts}):
            if not stat.S_ISDIR(_lstat(base / parent, parent.as_posix()).st_mode):
                raise _member_missing(parent.as_posix())  # a link (or a file) on the way
        for path, rel in zip(members, paths, strict=True):
            _check_member(registry, path, _lstat(base / rel, path))

    await asyncio.to_thread(check_all)
    plan = DownloadPlan(200, {
        "Content-Type": "application/zip",
        "Content-Disposition": content_disposition(f"{row['name']}.zip"),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Accept-Ranges": "none",
        "Cache-Control": "private, no-cache",
    })
    plan.archive = lambda: zip_pieces(members, member_fd)
    return plan


def _member_path(path: str, allow_hidden: bool) -> PurePosixPath:
    try:
        return check_relpath(path, allow_hidden=allow_hidden)
    except ApiError:
        raise _member_missing(path) from None


def _lstat(path: Path, member: str) -> os.stat_result:
    try:
        return os.lstat(path)
    except OSError:
        raise _member_missing(member) from None


def _member_missing(path: str) -> ApiError:
    return not_found(f"a file of the folder is missing or no longer a plain file: {path}")


def _check_member(registry: NotebenchAssetRegistry, path: str, st: os.stat_result) -> None:
    """A member must still be a regular file with no hard link the registry did not make."""
    if not stat.S_ISREG(st.st_mode):
        raise _member_missing(path)
    if st.st_nlink > 1 and not registry.link_ok_sync(st.st_dev, st.st_ino, st.st_nlink):
        raise ApiError(403, "hard_link_refused",
                       f"a file of the folder has other hard links: {path}")


def _part_head(plan: DownloadPlan, media_type: str, start: int, end: int) -> bytes:
    return (f"--{plan.boundary}\r\nContent-Type: {media_type}\r\n"
            f"Content-Range: bytes {start}-{end - 1}/{plan.size}\r\n\r\n").encode()


def _closing(plan: DownloadPlan) -> bytes:
    return f"--{plan.boundary}--\r\n".encode()


async def read_chunks(plan: DownloadPlan) -> AsyncIterator[bytes]:
    """The body: each range read in a thread one chunk ahead (multipart framing added)."""
    assert plan.fd is not None
    fd = plan.fd
    media_type = plan.part_type
    for start, end in plan.ranges:
        if plan.boundary is not None:
            yield _part_head(plan, media_type, start, end)
        position = start
        pending = asyncio.ensure_future(
            asyncio.to_thread(os.pread, fd, min(CHUNK, end - position), position))
        while pending is not None:
            data = await pending
            if not data:
                raise OSError("the file shrank while it was being sent")
            position += len(data)
            pending = (asyncio.ensure_future(asyncio.to_thread(
                os.pread, fd, min(CHUNK, end - position), position)) if position < end else None)
            yield data
        if plan.boundary is not None:
            yield b"\r\n"
    if plan.boundary is not None:
        yield _closing(plan)


async def pieces_in_thread(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The items of ``pieces``, each made in a thread one ahead of the consumer.

    Use it under ``contextlib.aclosing``: closing waits for the thread, then closes
    ``pieces`` (its ``finally`` blocks release what it opened).
    """
    pending: asyncio.Future[bytes | None] | None = None
    try:
        pending = asyncio.ensure_future(asyncio.to_thread(next, pieces, None))
        while True:
            piece = await pending
            pending = None
            if piece is None:
                return
            pending = asyncio.ensure_future(asyncio.to_thread(next, pieces, None))
            yield piece
    finally:
        if pending is not None:
            await asyncio.wait([pending])  # a thread may still be inside the generator
            if not pending.cancelled():
                pending.exception()  # retrieved: the consumer has gone, nothing to report
        await asyncio.to_thread(pieces.close)
