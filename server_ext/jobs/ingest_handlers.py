"""The ingest routes (``lifecycle/jobs/{id}/ingest...``): what a remote job's forwarder
sends, written into the server-side job directory (``IngestSink``), each answer carrying
what the job should do now (``CONTROL``).

A job's own token (``nbj_``) may call them for its job, and so may an owner (write on
jobs). A job is live for ingest while it is not in a final state (queued ones included:
a worker may start before the server marks the job running); a job that ended answers
``409 job_ended``, and a server whose executor runs no remote jobs ``409 not_remote``.
"""

from __future__ import annotations

import asyncio
import math
import re
from typing import TYPE_CHECKING, Any, cast

from tornado.web import stream_request_body

from notebench.jobprotocol import TERMINAL

from ..bounds import MAX_SAFE_INT
from ..errors import ApiError, bad_request, conflict
from ..filesink import FileSink
from ..handlers import NotebenchHandler
from ..resumable import LENGTH_HEADER, OFFSET_HEADER, UPLOAD_ID_PATTERN, parse_offset
from ..tasks import DETACHED
from .ingest import MAX_INGEST_CHUNK, STREAMS, check_relative, storage_error

if TYPE_CHECKING:
    from .ingest_uploads import IngestUploads
    from .remote_control import RemoteControl
    from .service import NotebenchJobService

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
#: what a heartbeat may say of where the job runs, and the type of each
_PLACEMENT = {"worker": str, "host": str, "pid": int, "threads": int}


def chunk_too_large() -> ApiError:
    return ApiError(413, "too_large", f"an ingest request carries at most {MAX_INGEST_CHUNK} "
                                      "bytes: send smaller chunks", max_bytes=MAX_INGEST_CHUNK)


class IngestHandlerBase(NotebenchHandler):
    """A job's own token may call these routes for its job."""

    auth_area = "jobs"
    job_token_scope = True

    @property
    def jobs(self) -> NotebenchJobService:
        return cast("NotebenchJobService", self.services.jobs)  # its routes: its service

    async def live_remote(self, job_id: str) -> RemoteControl:
        """The remote control of a job that may still send (404 unknown, 409 ended or not
        run remotely)."""
        row = await self.jobs.repository.row(job_id)
        if row["state"] in TERMINAL:
            raise conflict(f"job {job_id} has ended ({row['state']}): stop sending",
                           "job_ended", state=row["state"])
        remote = self.jobs.remote_control
        if remote is None:
            raise conflict("this server's executor runs no remote jobs", "not_remote")
        return remote

    async def control(self, job_id: str, remote: RemoteControl) -> dict[str, Any]:
        """What the job should do now: stop (its ``control.json``), paused, a signal."""
        stop = await asyncio.to_thread(self.jobs.ingest.control_file, job_id)
        return {**remote.state(job_id), "stop": stop}

    def required_int(self, name: str) -> int:
        value = self.number_arg(name, int, low=0, high=MAX_SAFE_INT)
        if value is None:
            raise bad_request(f"send ?{name}=<bytes>", "invalid_parameter")
        return int(value)


class IngestHandler(IngestHandlerBase):
    """``GET lifecycle/jobs/{id}/ingest``: where the server-side copy stands."""

    async def get(self, job_id: str) -> None:
        remote = await self.live_remote(job_id)
        remote.heard(job_id, {})
        where = await asyncio.to_thread(self.jobs.ingest.where, job_id)
        self.write_json({**where, "control": await self.control(job_id, remote)})


class HeartbeatHandler(IngestHandlerBase):
    """``POST lifecycle/jobs/{id}/ingest/heartbeat``: the job is alive; where it runs."""

    async def post(self, job_id: str) -> None:
        self.require_writable()
        body = self.json_body()
        info = placement_of(body)
        notes = notes_of(body)
        remote = await self.live_remote(job_id)
        if remote.heard(job_id, info):
            await self.jobs.placed(job_id)
        for note in notes:
            self.jobs.remote_note(job_id, note)
        self.write_json({"control": await self.control(job_id, remote)})


#: what a forwarder reports of a remote job (``notes`` of a heartbeat)
NOTE_KINDS = ("reconnected", "grace_stop", "buffer_full", "buffer_drained")
MAX_NOTES = 32


def notes_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``notes`` of a heartbeat: known kinds with numeric figures (400 otherwise)."""
    notes = body.get("notes")
    if notes is None:
        return []
    if not isinstance(notes, list) or len(notes) > MAX_NOTES:
        raise bad_request(f"notes must be a list of at most {MAX_NOTES} objects",
                          "invalid_request")
    out = []
    for note in notes:
        if not isinstance(note, dict) or note.get("kind") not in NOTE_KINDS:
            raise bad_request(f"each note is an object whose kind is one of "
                              f"{', '.join(NOTE_KINDS)}", "invalid_request")
        figures = {k: v for k, v in note.items() if k != "kind"}
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                   and math.isfinite(v) for v in figures.values()) or len(figures) > 8:
            raise bad_request("a note's other fields are numbers", "invalid_request")
        out.append({"kind": note["kind"], **{str(k)[:64]: v for k, v in figures.items()}})
    return out


def placement_of(body: dict[str, Any]) -> dict[str, Any]:
    """The known fields of a heartbeat (400 for a wrong type); others are ignored."""
    info: dict[str, Any] = {}
    for name, kind in _PLACEMENT.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            raise bad_request(f"{name} must be a {kind.__name__}", "invalid_request")
        info[name] = value
    uuids = body.get("gpu_uuids")
    if uuids is not None:
        if not isinstance(uuids, list) or not all(isinstance(u, str) for u in uuids):
            raise bad_request("gpu_uuids must be a list of strings", "invalid_request")
        info["gpu_uuids"] = uuids
    return info


@stream_request_body
class _ChunkHandler(IngestHandlerBase):
    """A route whose body is one chunk of at most ``MAX_INGEST_CHUNK`` bytes, kept in
    memory. Everything that can be checked without the body is, before it is read."""

    #: the method that carries a chunk
    body_method = "POST"
    receiving = False
    received = 0
    remote: RemoteControl | None = None

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method != self.body_method:
            if self.request.method != "OPTIONS":  # CORS pre-flight: the base class answers
                raise ApiError(405, "method_not_allowed",
                               f"{self.request.method} is not served here "
                               f"(allowed: {self.body_method})")
            return
        self.require_writable()
        declared = self.declared_length()
        if declared is not None and declared > MAX_INGEST_CHUNK:
            raise chunk_too_large()
        self.check_arguments(self.path_args[1])
        self.remote = await self.live_remote(self.path_args[0])
        self._chunks: list[bytes] = []
        self.receiving = True

    def check_arguments(self, target: str) -> None:
        """Refuse bad arguments before the body is read."""

    async def data_received(self, chunk: bytes) -> None:
        if not self.receiving or self._finished:
            return  # also the body of a request prepare() let through unread (OPTIONS)
        self.received += len(chunk)
        if self.received > MAX_INGEST_CHUNK:
            self.receiving = False
            self._chunks.clear()
            error = chunk_too_large()
            self.send_error(error.status, exc_info=(type(error), error, None))
            return
        self._chunks.append(chunk)

    def body_bytes(self) -> bytes | None:
        """The chunk (None: the request was already answered)."""
        if not self.receiving or self._finished:
            return None
        self.receiving = False
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class StreamIngestHandler(_ChunkHandler):
    """``POST lifecycle/jobs/{id}/ingest/streams/{name}?offset=N``: bytes of a stream."""

    def check_arguments(self, target: str) -> None:
        if target not in STREAMS:
            raise bad_request(f"unknown stream {target!r}: one of {', '.join(STREAMS)}",
                              "unknown_stream")
        self.offset = self.required_int("offset")

    async def post(self, job_id: str, name: str) -> None:
        data = self.body_bytes()
        if data is None or self.remote is None:
            return
        size = await asyncio.to_thread(self.jobs.ingest.append, job_id, name, self.offset,
                                       data)
        self.remote.heard(job_id, {})
        self.write_json({"size": size, "control": await self.control(job_id, self.remote)})


class FileIngestHandler(_ChunkHandler):
    """``PUT lifecycle/jobs/{id}/ingest/files/{path}?offset=N&total=T&sha256=H``: a chunk
    of a whole file."""

    body_method = "PUT"

    def check_arguments(self, target: str) -> None:
        check_relative(target)
        self.offset = self.required_int("offset")
        self.total = self.required_int("total")
        limit = self.jobs.max_ingest_file_bytes
        if self.total > limit:
            raise ApiError(413, "too_large", f"a forwarded file may have at most {limit} "
                           "bytes (c.NotebenchJobService.max_ingest_file_bytes)",
                           max_bytes=limit)
        if self.offset > self.total:
            raise bad_request("offset must not be past total", "invalid_range")
        digest = self.get_query_argument("sha256", "")
        if not _SHA256.fullmatch(digest):
            raise bad_request("send ?sha256=<64 hex digits> of the whole file",
                              "invalid_parameter")
        self.sha256 = digest.lower()

    async def put(self, job_id: str, rel: str) -> None:
        data = self.body_bytes()
        if data is None or self.remote is None:
            return
        result = await asyncio.to_thread(self.jobs.ingest.put_chunk, job_id, rel,
                                         self.offset, self.total, self.sha256, data)
        self.remote.heard(job_id, {})
        self.write_json({**result, "control": await self.control(job_id, self.remote)})


class _UploadsBase(IngestHandlerBase):
    @property
    def uploads(self) -> IngestUploads:
        return self.jobs.ingest.uploads

    def upload_url(self, job_id: str, uid: str) -> str:
        return f"{self.base_url}notebench/api/lifecycle/jobs/{job_id}/ingest/uploads/{uid}"


class UploadsIngestHandler(_UploadsBase):
    """``POST lifecycle/jobs/{id}/ingest/uploads {name, size, sha256}``: start a resumable
    upload of a large file (``name``: its path in the job directory)."""

    async def post(self, job_id: str) -> None:
        self.require_writable()
        body = self.json_body()
        remote = await self.live_remote(job_id)
        status = await self.uploads.create(job_id, body, self.jobs.max_ingest_file_bytes)
        remote.heard(job_id, {})
        self.set_header(OFFSET_HEADER, "0")
        self.set_header("Location", self.upload_url(job_id, status["id"]))
        self.write_json({**status, "control": await self.control(job_id, remote)},
                        status=201)


@stream_request_body
class UploadSessionIngestHandler(_UploadsBase):
    """``HEAD``/``GET`` (the offset reached), ``PATCH`` (a chunk at ``Upload-Offset``),
    ``DELETE`` (abort) of ``lifecycle/jobs/{id}/ingest/uploads/{uid}``. A chunk streams
    into the part file; one cut off keeps what arrived, fsynced: ``HEAD`` says where to
    go on."""

    methods = ("HEAD", "GET", "PATCH", "DELETE", "OPTIONS")
    sink: FileSink | None = None
    remote: RemoteControl | None = None
    failed = False

    async def prepare(self) -> None:
        await super().prepare()
        method = self.request.method or ""
        if method not in self.methods:  # before Tornado reads any of the body
            raise ApiError(405, "method_not_allowed", f"{method} is not served here "
                           f"(allowed: {', '.join(self.methods[:-1])})")
        if method != "PATCH":
            return
        self.require_writable()
        job_id, uid = self.path_args[0], self.path_args[1]
        offset = parse_offset(self.request.headers.get(OFFSET_HEADER)
                              or self.get_query_argument("offset", None))
        self.remote = await self.live_remote(job_id)
        size = (await self.uploads.status(job_id, uid))["size"]
        remaining = max(size - offset, 0)
        declared = self.declared_length()
        if declared is not None and declared > remaining:
            raise self.past_size(size)
        self.sink = await self.uploads.open_chunk(job_id, uid, offset)
        self.request.connection.set_max_body_size(remaining)  # type: ignore[union-attr]

    @staticmethod
    def past_size(size: int) -> ApiError:
        return ApiError(413, "too_large", f"the chunk goes past the upload's size of {size} "
                        "bytes", max_bytes=size)

    async def data_received(self, chunk: bytes) -> None:
        if self.failed or self._finished or self.sink is None:
            return  # also the body of a request prepare() let through unread
        try:
            await self.sink.feed(chunk)
        except ApiError as exc:
            await self.refuse(self.past_size(self.sink.limit) if exc.status == 413 else exc)
        except OSError as exc:
            await self.refuse(storage_error(exc))

    async def refuse(self, error: ApiError) -> None:
        """Answer now; what was written so far stays (the offset reached)."""
        self.failed = True
        await self.release()
        if not self._finished:
            self.send_error(error.status, exc_info=(type(error), error, None))

    async def release(self) -> dict[str, Any] | None:
        """End the chunk: what arrived is fsynced and counts; the upload's status."""
        sink, self.sink = self.sink, None
        if sink is None:
            return None
        return await self.uploads.close_chunk(self.path_args[0], self.path_args[1], sink)

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self.sink is not None:  # cut off mid-chunk: keep what arrived
            DETACHED.spawn(self.release())

    def on_finish(self) -> None:
        if self.sink is not None:
            DETACHED.spawn(self.release())

    async def patch(self, job_id: str, uid: str) -> None:
        if self.failed or self._finished:
            return
        try:
            status = await self.release()
        except OSError as exc:
            raise storage_error(exc) from None
        assert status is not None and self.remote is not None
        self.remote.heard(job_id, {})
        self.set_header(OFFSET_HEADER, str(status["offset"]))
        self.write_json({**status, "control": await self.control(job_id, self.remote)})

    async def head(self, job_id: str, uid: str) -> None:
        (await self.live_remote(job_id)).heard(job_id, {})
        status = await self.uploads.status(job_id, uid)
        self.set_header(OFFSET_HEADER, str(status["offset"]))
        self.set_header(LENGTH_HEADER, str(status["size"]))
        self.set_header("Cache-Control", "no-store")
        self.finish()

    async def get(self, job_id: str, uid: str) -> None:
        (await self.live_remote(job_id)).heard(job_id, {})
        status = await self.uploads.status(job_id, uid)
        self.set_header(OFFSET_HEADER, str(status["offset"]))
        self.set_header("Cache-Control", "no-store")
        self.write_json(status)

    async def delete(self, job_id: str, uid: str) -> None:
        self.require_writable()
        await self.live_remote(job_id)
        await self.uploads.abort(job_id, uid)
        self.write_json({"id": uid, "state": "aborted"})


class UploadCompleteIngestHandler(_UploadsBase):
    """``POST lifecycle/jobs/{id}/ingest/uploads/{uid}/complete``: check size and sha256,
    put the file in place (as the last chunk of a whole-file ``PUT`` does)."""

    async def post(self, job_id: str, uid: str) -> None:
        self.require_writable()
        remote = await self.live_remote(job_id)
        placed = await self.uploads.complete(job_id, uid)
        remote.heard(job_id, {})
        self.write_json({**placed, "control": await self.control(job_id, remote)})


def ingest_routes(job_id: str) -> list[tuple[str, type]]:
    """The routes, for ``handlers.jobs_routes`` (``job_id``: the id's pattern group)."""
    return [
        (rf"lifecycle/jobs/{job_id}/ingest", IngestHandler),
        (rf"lifecycle/jobs/{job_id}/ingest/heartbeat", HeartbeatHandler),
        (rf"lifecycle/jobs/{job_id}/ingest/streams/([^/]+)", StreamIngestHandler),
        (rf"lifecycle/jobs/{job_id}/ingest/files/(.+)", FileIngestHandler),
        (rf"lifecycle/jobs/{job_id}/ingest/uploads", UploadsIngestHandler),
        (rf"lifecycle/jobs/{job_id}/ingest/uploads/({UPLOAD_ID_PATTERN})",
         UploadSessionIngestHandler),
        (rf"lifecycle/jobs/{job_id}/ingest/uploads/({UPLOAD_ID_PATTERN})/complete",
         UploadCompleteIngestHandler),
    ]
