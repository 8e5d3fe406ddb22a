"""Streaming bytes into a temporary file: sha256 on the way, size limit, type check, fsync.

Chunks are gathered on the event loop and handed, a few MiB at a time, to a worker
thread that hashes and writes them and starts their writeback; at most one batch is
in flight, and ``feed`` waits for it before handing over the next, so a fast client is
slowed to the disk's pace (Tornado stops reading while ``data_received`` waits) and
memory stays bounded by two batches.

Shared by the assets' uploads and a remote job's resumable ingest uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ApiError

#: ``(head, complete) -> what the head is``; raises an ``ApiError`` to refuse the file
TypeCheck = Callable[[bytes, bool], Any]


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the file is larger than this category allows "
                                      f"({limit} bytes)", max_bytes=limit)


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_SYNC_FILE_RANGE = _sync_file_range() if sys.platform.startswith("linux") else None
SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing a range to disk now (Linux; never waits for it).

    The final fsync then finds most of the file already on disk: receiving and flushing
    overlap instead of following each other.
    """
    if _SYNC_FILE_RANGE is not None and length:
        _SYNC_FILE_RANGE(fd, offset, length, SYNC_FILE_RANGE_WRITE)


class FileSink:
    """One temporary file being written (new, or resumed at ``offset``).

    ``type_check(head, complete)`` (optional) sees the first ``head_bytes`` of a new file
    (all of it when shorter); its answer is kept in ``sniffed``."""

    #: how much of a new file's head the type check sees
    head_bytes = 65536

    def __init__(self, path: Path, *, limit: int, type_check: TypeCheck | None,
                 batch_bytes: int = 4 << 20, offset: int = 0,
                 hasher: hashlib._Hash | None = None) -> None:
        self.path = path
        self.limit = limit
        self.type_check = type_check
        self.batch_bytes = batch_bytes
        self.offset = offset
        self.size = offset  # bytes accepted so far (file offset reached once flushed)
        self.written = offset
        self.hasher = hasher if hasher is not None else (hashlib.sha256() if offset == 0 else None)
        self.sniffed: Any = None
        self._head = bytearray() if type_check is not None and offset == 0 else None
        self._chunks: list[bytes] = []
        self._pending = 0
        self._inflight: asyncio.Future[None] | None = None
        self._fd: int | None = None
        self.closed = False

    # -- opening -------------------------------------------------------------------------

    def open_sync(self, *, create: bool) -> None:
        flags = os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW
        if create:
            flags |= os.O_CREAT | os.O_EXCL
            self.path.parent.mkdir(exist_ok=True)  # the root's temp folder, if it was removed
        self._fd = os.open(self.path, flags, 0o644)
        if not create:
            os.ftruncate(self._fd, self.offset)
        os.lseek(self._fd, self.offset, os.SEEK_SET)

    async def open(self, *, create: bool = True) -> None:
        await asyncio.to_thread(self.open_sync, create=create)

    # -- streaming -----------------------------------------------------------------------

    async def feed(self, data: bytes) -> None:
        """Accept a chunk; raises 413/415 (the caller aborts) or the write's OSError."""
        if not data:
            return
        if self.size + len(data) > self.limit:
            raise too_large(self.limit)
        self.size += len(data)
        if self._head is not None:
            self._head += data[: self.head_bytes - len(self._head)]
            if len(self._head) >= self.head_bytes:
                self._check_type(complete=False)
        self._chunks.append(data)
        self._pending += len(data)
        if self._pending >= self.batch_bytes:
            await self._hand_over()

    def _check_type(self, *, complete: bool) -> None:
        assert self._head is not None and self.type_check is not None
        head, self._head = bytes(self._head), None
        self.sniffed = self.type_check(head, complete)

    async def _hand_over(self) -> None:
        if self._inflight is not None:
            await self._inflight
            self._inflight = None
        chunks, self._chunks, self._pending = self._chunks, [], 0
        self._inflight = asyncio.ensure_future(asyncio.to_thread(self._write, chunks))

    def _write(self, chunks: list[bytes]) -> None:
        """Worker thread: hash and write one batch, then start its writeback."""
        assert self._fd is not None
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if self.hasher is not None:
            self.hasher.update(data)  # one call per batch: one GIL hand-back, not one per chunk
        start = self.written
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]
        self.written += len(data)
        start_writeback(self._fd, start, len(data))

    async def flush(self) -> None:
        """Write everything accepted so far."""
        if self._chunks:
            await self._hand_over()
        if self._inflight is not None:
            inflight, self._inflight = self._inflight, None
            await inflight

    async def finish(self) -> str | None:
        """Flush, check the type of a short file, fsync, close; the sha256 (when known)."""
        if self._head is not None:
            self._check_type(complete=True)
        await self.flush()
        await asyncio.to_thread(self._sync_close)
        return self.hasher.hexdigest() if self.hasher is not None else None

    async def sync(self) -> None:
        """Flush and fsync, keeping the file open (a resumable chunk's end)."""
        await self.flush()
        if self._fd is not None:
            await asyncio.to_thread(os.fsync, self._fd)

    def _sync_close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        self.closed = True

    async def close(self, *, remove: bool) -> None:
        """Stop: wait for the write in flight, close, and delete the file if asked."""
        inflight, self._inflight = self._inflight, None
        if inflight is not None:
            with contextlib.suppress(Exception):
                await inflight
        await asyncio.to_thread(self._close_sync, remove)

    def _close_sync(self, remove: bool) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        self.closed = True
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
