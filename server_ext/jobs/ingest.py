"""``IngestSink``: the bytes a remote job's forwarder sends, into the server-side job
directory, where the tailer reads them as it reads a local job's.

Streams (``events.jsonl``, ``runner.jsonl``, ``papermill.log``) grow by appends at
offsets: a chunk that starts past the end is refused with the size, a retried chunk
writes nothing twice, every append is fsynced before the answer. Whole files (the output
notebook, checkpoints, artifacts) arrive in chunks into a hidden part file
(``.ingest/parts/<rel>.part``); the last chunk's sha256 must match, then the part replaces
the file atomically and ``.ingest/index.json`` records its size and sha256. Large files
come through the resumable upload protocol instead (``ingest_uploads``) and are put in
place the same way (``place``).

Blocking (file system): the handlers call it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from notebench.jobprotocol import CONTROL_FILE, fsync_dir, is_job_id, write_json_atomic

from ..errors import ApiError, bad_request, not_found
from .ingest_paths import (
    INGEST_DIR,
    RESERVED,
    STREAMS,
    check_relative,
    file_sha256,
    storage_error,
)
from .ingest_uploads import IngestUploads
from .jobdir import read_json

__all__ = ["INGEST_DIR", "MAX_INGEST_CHUNK", "RESERVED", "STREAMS", "IngestSink",
           "OffsetMismatch", "check_relative", "storage_error"]

#: the most bytes one ingest request may carry
MAX_INGEST_CHUNK = 4 * 1024 * 1024
PARTS_DIR = "parts"
INDEX_FILE = "index.json"


class OffsetMismatch(ApiError):
    """409 ``offset_mismatch``: the chunk does not start where the server's copy ends;
    ``size`` (also in ``details``) is where it ends."""

    def __init__(self, size: int, what: str) -> None:
        super().__init__(409, "offset_mismatch",
                         f"{what} holds {size} bytes: send from offset {size}", size=size)
        self.size = size

    def body(self) -> dict[str, Any]:
        return {**super().body(), "size": self.size}


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


class IngestSink:
    """Writes forwarded bytes into ``runs_dir/<job id>`` (see the module docstring)."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        #: large files through the resumable upload protocol (``ingest_uploads``)
        self.uploads = IngestUploads(self)

    # -- reading ---

    def job_dir(self, job_id: str) -> Path:
        """The job's directory (404 when the job has none)."""
        if not is_job_id(job_id):
            raise not_found(f"no job {job_id}", "unknown_job")
        path = self.runs_dir / job_id
        if not path.is_dir():
            raise not_found(f"job {job_id} has no directory", "unknown_job")
        return path

    def where(self, job_id: str) -> dict[str, Any]:
        """How far the server-side copy is: each stream's size, each complete file's size
        and sha256."""
        job_dir = self.job_dir(job_id)
        streams = {}
        for name in STREAMS:
            try:
                streams[name] = (job_dir / name).stat().st_size
            except FileNotFoundError:
                streams[name] = 0
        return {"streams": streams, "files": self._index(job_dir)}

    def control_file(self, job_id: str) -> dict[str, Any] | None:
        """The job's server-side ``control.json`` (None: none, or not an object)."""
        control = read_json(self.runs_dir / job_id / CONTROL_FILE)
        return control if isinstance(control, dict) else None

    # -- writing ---

    def append(self, job_id: str, name: str, offset: int, data: bytes) -> int:
        """Bytes ``[offset, offset + len(data))`` of a stream: the part past the file's end
        appended and fsynced; the file's size after (``OffsetMismatch`` past the end)."""
        if name not in STREAMS:
            raise bad_request(f"unknown stream {name!r}: one of {', '.join(STREAMS)}",
                              "unknown_stream")
        job_dir = self.job_dir(job_id)
        path = job_dir / name
        with self.locked(job_id, name):
            try:
                created = not path.exists()
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    size = os.fstat(fd).st_size
                    if offset > size:
                        raise OffsetMismatch(size, name)
                    skip = size - offset
                    if skip < len(data):
                        _write_all(fd, memoryview(data)[skip:])
                        os.fsync(fd)
                        size = offset + len(data)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise storage_error(exc) from None
            if created:
                fsync_dir(job_dir)
        return size

    def put_chunk(self, job_id: str, rel: str, offset: int, total: int, sha256: str,
                  data: bytes) -> dict[str, Any]:
        """Bytes ``[offset, offset + len(data))`` of a whole file of ``total`` bytes; the
        last one checks ``sha256`` and puts the file in place. ``{"size", "complete"}``.

        Offset 0 starts the part anew (a newer version of the file); a retried chunk
        writes nothing twice, and a retry after the file was put in place answers
        complete."""
        rel = check_relative(rel)
        if offset + len(data) > total:
            raise bad_request(f"the chunk ends at {offset + len(data)}, past the file's "
                              f"total of {total} bytes", "invalid_range")
        job_dir = self.job_dir(job_id)
        part = job_dir / INGEST_DIR / PARTS_DIR / f"{rel}.part"
        with self.locked(job_id, "file:" + rel):
            if self._in_place(job_dir, rel, total, sha256):
                return {"size": total, "complete": True}
            try:
                size = self._write_part(part, offset, data, rel)
            except OSError as exc:
                raise storage_error(exc) from None
            if size < total:
                return {"size": size, "complete": False}
            try:
                self._finish(job_id, rel, part, total, sha256)
            except OSError as exc:
                raise storage_error(exc) from None
        return {"size": total, "complete": True}

    def forget(self, job_id: str) -> None:
        """Drop the job's locks and unfinished uploads (it ended)."""
        self.uploads.forget(job_id)
        with self._guard:
            for key in [k for k in self._locks if k[0] == job_id]:
                del self._locks[key]

    # -- helpers ---

    @contextlib.contextmanager
    def locked(self, job_id: str, what: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault((job_id, what), threading.Lock())
        with lock:
            yield

    def _index(self, job_dir: Path) -> dict[str, dict[str, Any]]:
        index = read_json(job_dir / INGEST_DIR / INDEX_FILE)
        return index if isinstance(index, dict) else {}

    def _in_place(self, job_dir: Path, rel: str, total: int, sha256: str) -> bool:
        """Whether this very version of the file is already in place."""
        entry = self._index(job_dir).get(rel)
        if entry != {"size": total, "sha256": sha256}:
            return False
        try:
            return (job_dir / rel).stat().st_size == total
        except OSError:
            return False

    def _write_part(self, part: Path, offset: int, data: bytes, rel: str) -> int:
        """Write the chunk into the part file; its size after."""
        if offset == 0:
            part.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        else:
            flags = os.O_WRONLY | os.O_APPEND
        try:
            fd = os.open(part, flags, 0o644)
        except FileNotFoundError:
            raise OffsetMismatch(0, f"the part of {rel}") from None
        try:
            size = os.fstat(fd).st_size
            if offset > size:
                raise OffsetMismatch(size, f"the part of {rel}")
            skip = size - offset
            if skip < len(data):
                _write_all(fd, memoryview(data)[skip:])
                size = offset + len(data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return size

    def _finish(self, job_id: str, rel: str, part: Path, total: int, sha256: str) -> None:
        """Check the complete part's digest, put it in place, record it in the index."""
        if file_sha256(part) != sha256:
            part.unlink(missing_ok=True)
            raise bad_request(f"the sha256 of {rel} does not match: send it again",
                              "checksum_mismatch")
        self.place(job_id, rel, part, total, sha256)

    def place(self, job_id: str, rel: str, part: Path, total: int, sha256: str) -> None:
        """Put a complete, checked part in place as ``rel`` (atomic rename; a newer
        version replaces the older) and record it in the index. The caller holds the
        file's lock (``locked(job_id, "file:" + rel)``)."""
        job_dir = self.job_dir(job_id)
        dest = job_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.parent.resolve().is_relative_to(job_dir.resolve()):
            part.unlink(missing_ok=True)
            raise bad_request(f"the file path {rel!r} leads out of the job directory",
                              "unsafe_path")
        os.replace(part, dest)
        fsync_dir(dest.parent)
        with self.locked(job_id, INDEX_FILE):
            index = self._index(job_dir)
            index[rel] = {"size": total, "sha256": sha256}
            write_json_atomic(job_dir / INGEST_DIR / INDEX_FILE, index)
