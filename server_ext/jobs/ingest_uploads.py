"""``IngestUploads``: a remote job's large files through the resumable upload protocol
(``notebench.server.resumable``), under the job's ingest routes.

An upload is two hidden files in the job's directory: ``.ingest/uploads/<uid>.json`` (its
name, size and sha256, written once) and ``<uid>.part``, whose size, fsynced at the end of
every chunk, is the offset reached. What lives only in memory is which upload is receiving
and the running sha256: after a server restart an upload is read back from its files (the
forwarder goes on from ``HEAD``'s offset) and its digest is computed from the part at
completion. ``complete`` checks size and sha256 and puts the file in place as the
whole-file ``PUT`` does (``IngestSink.place``: the same checks, index and replacement).

A job holds at most ``max_open`` unfinished uploads (429 past it); a new upload of a name
replaces an unfinished one of the same name (a newer version of the file). The job's
uploads go when it ends (``forget``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import fsync_dir, write_json_atomic

from ..errors import ApiError, bad_request, not_found
from ..filesink import FileSink
from ..resumable import (
    check_digest,
    digest_mismatch,
    incomplete,
    is_upload_id,
    new_upload_id,
    offset_mismatch,
    upload_busy,
)
from .ingest_paths import INGEST_DIR, check_relative, file_sha256, storage_error

if TYPE_CHECKING:
    from .ingest import IngestSink

UPLOADS_DIR = "uploads"
#: unfinished uploads one job may hold
MAX_OPEN_UPLOADS = 4


@dataclass
class _Upload:
    uid: str
    name: str
    size: int
    sha256: str
    part: Path
    offset: int

    def public(self) -> dict[str, Any]:
        return {"id": self.uid, "name": self.name, "size": self.size,
                "offset": self.offset, "sha256": self.sha256}


def file_too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"a forwarded file may have at most {limit} bytes "
                    "(c.NotebenchJobService.max_ingest_file_bytes)", max_bytes=limit)


class IngestUploads:
    """The resumable uploads of every job (module docstring). Async: the file system
    work runs in threads."""

    def __init__(self, sink: IngestSink, max_open: int = MAX_OPEN_UPLOADS) -> None:
        self.sink = sink
        self.max_open = max_open
        self._busy: dict[str, int] = {}  # uid -> the offset its chunk started at
        self._hashers: dict[str, tuple[int, Any]] = {}  # uid -> (offset, running sha256)
        self._jobs: dict[str, str] = {}  # uid -> job id, for ``forget``

    # -- the protocol ---

    async def create(self, job_id: str, body: Any, max_bytes: int) -> dict[str, Any]:
        """``{name, size, sha256}``: a new upload at offset 0 (400, 413, 429)."""
        if not isinstance(body, dict):
            raise bad_request("send {name, size, sha256}")
        name = body.get("name")
        if not isinstance(name, str):
            raise bad_request("name (the file's path in the job directory) is required",
                              "unsafe_path")
        name = check_relative(name)
        size = body.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad_request("size must be a non-negative integer")
        if size > max_bytes:
            raise file_too_large(max_bytes)
        digest = check_digest(body.get("sha256"))
        if digest is None:
            raise bad_request("send the file's sha256 (64 hexadecimal digits)",
                              "invalid_digest")
        upload = await asyncio.to_thread(self._create, job_id, name, size, digest)
        self._hashers[upload.uid] = (0, hashlib.sha256())
        self._jobs[upload.uid] = job_id
        return upload.public()

    async def status(self, job_id: str, uid: str) -> dict[str, Any]:
        return (await asyncio.to_thread(self._load, job_id, uid)).public()

    async def open_chunk(self, job_id: str, uid: str, offset: int) -> FileSink:
        """Start a chunk at ``offset``: the sink to stream into (the upload is held busy
        until ``close_chunk``)."""
        upload = await asyncio.to_thread(self._load, job_id, uid)
        if uid in self._busy:
            raise upload_busy("another request is sending to this upload")
        if offset != upload.offset:
            raise offset_mismatch(upload.offset)
        cached = self._hashers.get(uid)
        hasher = cached[1] if cached is not None and cached[0] == offset else None
        sink = FileSink(upload.part, limit=upload.size, type_check=None, offset=offset,
                        hasher=hasher if hasher is not None else
                        (hashlib.sha256() if offset == 0 else None))
        if sink.hasher is None:
            self._hashers.pop(uid, None)
        self._busy[uid] = offset
        try:
            await sink.open(create=False)
        except OSError:
            self._busy.pop(uid, None)
            raise not_found("the upload's data is gone", "unknown_upload") from None
        return sink

    async def close_chunk(self, job_id: str, uid: str, sink: FileSink) -> dict[str, Any]:
        """End a chunk (complete or cut off): fsync what arrived, release the upload."""
        try:
            await sink.sync()
            await sink.close(remove=False)
            if sink.hasher is not None:
                self._hashers[uid] = (sink.written, sink.hasher)
        finally:
            self._busy.pop(uid, None)
        return await self.status(job_id, uid)

    async def complete(self, job_id: str, uid: str) -> dict[str, Any]:
        """Check size and sha256, put the file in place (409 ``incomplete``, 400
        ``digest_mismatch``: the upload is dropped)."""
        upload = await asyncio.to_thread(self._load, job_id, uid)
        if uid in self._busy:
            raise upload_busy("a chunk is still being received")
        if upload.offset != upload.size:
            raise incomplete(upload.offset, upload.size)
        self._busy[uid] = upload.offset
        try:
            cached = self._hashers.get(uid)
            if cached is not None and cached[0] == upload.size:
                digest = cached[1].copy().hexdigest()
            else:
                digest = await asyncio.to_thread(file_sha256, upload.part)
            if digest != upload.sha256:
                await asyncio.to_thread(self._drop, job_id, uid)
                raise digest_mismatch(upload.sha256, digest)
            await asyncio.to_thread(self._place, job_id, upload)
        finally:
            self._busy.pop(uid, None)
        self._forget_upload(uid)
        return {"name": upload.name, "size": upload.size, "sha256": upload.sha256,
                "complete": True}

    async def abort(self, job_id: str, uid: str) -> None:
        await asyncio.to_thread(self._load, job_id, uid)
        if uid in self._busy:
            raise upload_busy("a chunk is still being received")
        await asyncio.to_thread(self._drop, job_id, uid)

    def forget(self, job_id: str) -> None:
        """The job ended: its uploads go (their files in a thread when a loop runs)."""
        for uid in [u for u, job in self._jobs.items() if job == job_id]:
            self._forget_upload(uid)
        folder = self.sink.runs_dir / job_id / INGEST_DIR / UPLOADS_DIR
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            loop.run_in_executor(None, shutil.rmtree, folder, True)

    # -- files (blocking) ---

    def _folder(self, job_id: str) -> Path:
        return self.sink.job_dir(job_id) / INGEST_DIR / UPLOADS_DIR

    def _create(self, job_id: str, name: str, size: int, digest: str) -> _Upload:
        folder = self._folder(job_id)
        with self.sink.locked(job_id, UPLOADS_DIR):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                open_uploads = self._listed(job_id, folder)
                for older in open_uploads:
                    if older.name == name and older.uid not in self._busy:
                        self._drop(job_id, older.uid)  # a newer version of the file
                left = [u for u in open_uploads if u.part.exists()]
                if len(left) >= self.max_open:
                    raise ApiError(429, "too_many_uploads",
                                   f"a job may hold {self.max_open} unfinished uploads; "
                                   "complete or delete one first", max_sessions=self.max_open)
                uid = new_upload_id()
                part = folder / f"{uid}.part"
                os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                write_json_atomic(folder / f"{uid}.json",
                                  {"name": name, "size": size, "sha256": digest})
                fsync_dir(folder)
            except OSError as exc:
                raise storage_error(exc) from None
        return _Upload(uid, name, size, digest, part, 0)

    def _listed(self, job_id: str, folder: Path) -> list[_Upload]:
        found = []
        for meta in folder.glob("*.json"):
            with contextlib.suppress(ApiError):
                found.append(self._load(job_id, meta.stem))
        return found

    def _load(self, job_id: str, uid: str) -> _Upload:
        """The upload from its files (404 when it is unknown, finished or aborted)."""
        folder = self._folder(job_id)
        gone = not_found("no such upload (finished, aborted or its job ended)",
                         "unknown_upload")
        if not is_upload_id(uid):
            raise gone
        try:
            meta = json.loads((folder / f"{uid}.json").read_bytes())
            offset = (folder / f"{uid}.part").stat().st_size
            offset = self._busy.get(uid, offset)  # a chunk's bytes count at its end
            upload = _Upload(uid, check_relative(meta["name"]), int(meta["size"]),
                             str(meta["sha256"]), folder / f"{uid}.part", offset)
        except (OSError, ValueError, KeyError, TypeError, ApiError):
            raise gone from None
        self._jobs.setdefault(uid, job_id)
        return upload

    def _place(self, job_id: str, upload: _Upload) -> None:
        try:
            with self.sink.locked(job_id, "file:" + upload.name):
                self.sink.place(job_id, upload.name, upload.part, upload.size, upload.sha256)
            (upload.part.parent / f"{upload.uid}.json").unlink(missing_ok=True)
        except ApiError:
            self._drop(job_id, upload.uid)  # a path the job directory refuses
            raise
        except OSError as exc:
            raise storage_error(exc) from None

    def _drop(self, job_id: str, uid: str) -> None:
        folder = self._folder(job_id)
        for suffix in (".json", ".part"):  # the record first: a lone part is not an upload
            (folder / f"{uid}{suffix}").unlink(missing_ok=True)
        self._forget_upload(uid)

    def _forget_upload(self, uid: str) -> None:
        self._hashers.pop(uid, None)
        self._jobs.pop(uid, None)
