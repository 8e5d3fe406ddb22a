"""The resumable upload routes, over ``services.assets.uploads``: notebench's own offset
protocol, and tus 1.0.0 (creation, termination, checksum) on the same paths for a request
that sends ``Tus-Resumable``.

tus differs from the own protocol only at the edges: creation reads ``Upload-Length`` and
``Upload-Metadata`` instead of a JSON body, chunks and deletions answer 204, a chunk may carry
``Upload-Checksum``, and the chunk that brings the last byte completes the upload (tus has no
``complete`` call) through the same ``complete`` as ``POST .../complete``.
"""

from __future__ import annotations

from typing import Any

from tornado.web import stream_request_body

from ..errors import ApiError, bad_request
from ..resumable import (
    CHECKSUM_HEADER,
    LENGTH_HEADER,
    METADATA_HEADER,
    OFFSET_HEADER,
    TUS_CHECKSUMS,
    TUS_CONTENT_TYPE,
    TUS_EXTENSIONS,
    TUS_HEADER,
    TUS_VERSION,
    parse_checksum,
    parse_length,
    parse_metadata,
    parse_offset,
    tus_version_refused,
)
from .handler_base import MULTIPART_SLACK, AssetsHandler, StreamedBody, tune_connection
from .sink import FileSink, storage_error, too_large


class TusAware(AssetsHandler):
    """A route that also speaks tus: the version checked, ``Tus-Resumable`` on every answer
    to a tus request (errors included), and discovery by ``OPTIONS``."""

    @property
    def tus(self) -> bool:
        """Whether this request speaks tus (it sent ``Tus-Resumable``)."""
        return TUS_HEADER in self.request.headers

    async def prepare(self) -> None:
        await super().prepare()
        if self.tus and self.request.method != "OPTIONS":
            self.set_header(TUS_HEADER, TUS_VERSION)
            if self.request.headers[TUS_HEADER].strip() != TUS_VERSION:
                raise tus_version_refused()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if self.tus:  # send_error cleared the headers set before
            self.set_header(TUS_HEADER, TUS_VERSION)
            if status_code == 412:
                self.set_header("Tus-Version", TUS_VERSION)
        super().write_error(status_code, **kwargs)

    def options(self, *args: Any, **kwargs: Any) -> None:
        """204: tus discovery (versions, extensions, checksums, the largest upload), with
        jupyter_server's CORS headers."""
        category = self.assets.categories.get(self.raw_argument("category") or "")
        limits = [category] if category else self.assets.categories.values()
        self.set_header(TUS_HEADER, TUS_VERSION)
        self.set_header("Tus-Version", TUS_VERSION)
        self.set_header("Tus-Extension", TUS_EXTENSIONS)
        self.set_header("Tus-Checksum-Algorithm", TUS_CHECKSUMS)
        self.set_header("Tus-Max-Size", str(max(cat.max_bytes for cat in limits)))
        super().options(*args, **kwargs)
        self.set_status(204)

    def upload_location(self, uid: str) -> str:
        return f"{self.base_url}notebench/api/assets/uploads/{uid}"


class UploadsHandler(TusAware):
    """``POST assets/uploads``: start a resumable upload (JSON, or tus creation)."""

    async def post(self) -> None:
        self.require_writable()
        body = self.tus_creation() if self.tus else self.body_object()
        await self.require_write_into(str(body.get("category", "")))
        uploads = self.assets.uploads
        status = await uploads.create(body, self.principal())
        if self.tus and status["size"] == 0:
            await uploads.complete(status["id"])  # no PATCH will come to finish it
        self.set_header(OFFSET_HEADER, "0")
        self.set_header("Location", self.upload_location(status["id"]))
        self.write_json(status, status=201)

    def tus_creation(self) -> dict[str, Any]:
        """A tus creation request as ``create``'s body: ``Upload-Length``, and
        ``Upload-Metadata`` naming the file (``filename`` or ``name``), its ``category``
        (or ``?category=``) and optionally its ``sha256``; the body must be empty."""
        if self.request.body:
            raise bad_request("send the data by PATCH (creation-with-upload is not "
                              "supported)", "body_not_allowed")
        size = parse_length(self.request.headers.get(LENGTH_HEADER))
        meta = parse_metadata(self.request.headers.get(METADATA_HEADER))
        name = meta.get("filename") or meta.get("name")
        if not name:
            raise bad_request(f"{METADATA_HEADER} must name the file (filename)",
                              "invalid_name")
        category = meta.get("category") or self.raw_argument("category")
        if not category:
            raise bad_request(f"say which category ({METADATA_HEADER} category, or "
                              "?category=)", "invalid_category")
        return {"category": category, "name": name, "size": size,
                "sha256": meta.get("sha256")}


@stream_request_body
class UploadSessionHandler(TusAware, StreamedBody):
    """``HEAD``/``GET`` (offset reached), ``PATCH`` (a chunk at an offset), ``DELETE``."""

    uid = ""
    sink: FileSink | None = None

    def holds_data(self) -> bool:
        return self.sink is not None

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method != "PATCH":
            return
        self.require_writable()
        self.uid = self.path_args[0]
        checksum = None
        if self.tus:
            content_type = self.request.headers.get("Content-Type", "")
            if content_type.partition(";")[0].strip().lower() != TUS_CONTENT_TYPE:
                raise ApiError(415, "unsupported_media_type",
                               f"a tus chunk is sent as {TUS_CONTENT_TYPE}")
            checksum = parse_checksum(self.request.headers.get(CHECKSUM_HEADER))
        offset = parse_offset(self.request.headers.get(OFFSET_HEADER)
                              or self.raw_argument("offset"))
        status = await self.assets.uploads.status(self.uid)
        if self.tus:  # its last chunk completes the upload
            await self.require_write_into(status["category"])
        declared = self.declared_length()
        remaining = status["size"] - offset
        if declared is not None and declared > max(remaining, 0):
            raise too_large(status["size"])
        self.sink, _ = await self.assets.uploads.open_chunk(self.uid, offset, checksum)
        tune_connection(self, max(remaining, 0) + MULTIPART_SLACK,
                        self.assets.upload_read_chunk_bytes)
        self.start_receiving()

    async def data_received(self, chunk: bytes) -> None:
        if self.failed or self._finished or self.sink is None:
            return
        self.got_bytes()
        try:
            await self.sink.feed(chunk)
        except ApiError as exc:
            await self.refuse_chunk(exc)
        except OSError as exc:
            await self.refuse_chunk(storage_error(exc))

    async def refuse_chunk(self, error: ApiError) -> None:
        self.failed = True
        sink, self.sink = self.sink, None
        if sink is not None:
            if error.status == 415:
                await self.assets.uploads.fail_chunk(self.uid, sink)
            else:
                await self.assets.uploads.close_chunk(self.uid, sink)
        if not self._finished:
            self.send_error(error.status, exc_info=(type(error), error, None))

    async def discard(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            await self.assets.uploads.close_chunk(self.uid, sink)

    async def patch(self, uid: str) -> None:
        self.stop_receiving()
        if self.failed or self._finished:
            return
        sink, self.sink = self.sink, None
        assert sink is not None
        try:
            status = await self.assets.uploads.close_chunk(uid, sink, whole=True)
        except OSError as exc:
            raise storage_error(exc) from None
        if not self.tus:
            self.set_header(OFFSET_HEADER, str(status["offset"]))
            self.write_json(status)
            return
        if status["offset"] == status["size"]:
            await self.assets.uploads.complete(uid)
        self.set_header(OFFSET_HEADER, str(status["offset"]))
        self.set_status(204)
        self.finish()

    async def head(self, uid: str) -> None:
        status = await self.assets.uploads.status(uid)
        self.set_header(OFFSET_HEADER, str(status["offset"]))
        self.set_header(LENGTH_HEADER, str(status["size"]))
        self.set_header("Cache-Control", "no-store")
        self.finish()

    async def get(self, uid: str) -> None:
        status = await self.assets.uploads.status(uid)
        self.set_header(OFFSET_HEADER, str(status["offset"]))
        self.set_header("Cache-Control", "no-store")
        self.write_json(status)

    async def delete(self, uid: str) -> None:
        self.require_writable()
        await self.assets.uploads.abort(uid)
        if self.tus:
            self.set_status(204)
            self.finish()
            return
        self.write_json({"id": uid, "state": "aborted"})


class UploadCompleteHandler(AssetsHandler):
    """``POST assets/uploads/{uid}/complete``: verify size, digest and type; register."""

    async def post(self, uid: str) -> None:
        self.require_writable()
        await self.require_write_into((await self.assets.uploads.status(uid))["category"])
        asset = await self.assets.uploads.complete(uid)
        self.set_header("Location", f"{self.base_url}notebench/api/assets/{asset['id']}")
        self.write_json(asset, status=201)
