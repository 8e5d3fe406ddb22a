"""Routes of the assets capability: parse, call ``services.assets``, answer."""

from __future__ import annotations

import contextlib
import urllib.parse

import orjson
from tornado import iostream
from tornado.web import stream_request_body

from ..errors import ApiError, bad_request
from ..logs.text import printable
from ..resumable import UPLOAD_ID_PATTERN, check_digest
from .download import DownloadPlan, pieces_in_thread, plan_download, read_chunks
from .fields import check_metadata, check_tags
from .handler_base import MULTIPART_SLACK, AssetsHandler, StreamedBody, tune_connection
from .multipart import MultipartStream, boundary_of
from .registry import ID_PATTERN
from .sendfile import (
    DirectSender,
    chunked_stream,
    direct_stream,
    expects_raw_body,
    write_chunk,
)
from .single_upload import SingleUpload
from .sink import storage_error, too_large
from .upload_handlers import UploadCompleteHandler, UploadSessionHandler, UploadsHandler

NAME_HEADER = "X-Asset-Name"
DIGEST_HEADER = "X-Content-SHA256"


@stream_request_body
class UploadHandler(StreamedBody):
    """``POST assets/upload/{category}``: one file, raw or multipart, streamed to disk.

    Everything that can be checked without the body is checked in ``prepare()`` (which
    Tornado runs before reading it): authentication and authorization (the base class),
    the category, the name, the type by extension, a free name and a declared
    ``Content-Length`` over the limit (413). Only then is the body limit raised. The
    pipeline itself is ``SingleUpload``.
    """

    upload: SingleUpload | None = None

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method != "POST":
            return  # Tornado answers 405
        self.require_writable()
        assets = self.assets
        category = assets.category(self.path_args[0])
        await self.require_write_into(category.name)
        limit = category.max_bytes
        overwrite = self.flag("overwrite")
        expected = check_digest(self.raw_argument("sha256")
                                or self.request.headers.get(DIGEST_HEADER))
        boundary = boundary_of(self.request.headers.get("Content-Type", ""))
        declared = self.declared_length()
        allowance = limit + (MULTIPART_SLACK if boundary else 0)
        if declared is not None and declared > allowance:
            raise too_large(limit)
        raw_name = self.raw_argument("name")
        if raw_name is None and NAME_HEADER in self.request.headers:
            try:
                raw_name = urllib.parse.unquote(self.request.headers[NAME_HEADER],
                                                errors="strict")
            except UnicodeDecodeError:
                raise bad_request("the name header is not UTF-8", "invalid_name") from None
        if raw_name is None and boundary is None:
            raise bad_request("name the file: ?name=, the X-Asset-Name header or a "
                              "multipart/form-data body", "invalid_name")
        self.upload = SingleUpload(assets, category, overwrite=overwrite, expected=expected)
        if raw_name is not None:
            await self.upload.start_file(raw_name)
        if boundary is not None:
            config = self.services.config
            self.upload.form = MultipartStream(
                boundary, max_header_bytes=config.multipart_max_header_bytes,
                max_headers=config.multipart_max_headers)
        tune_connection(self, allowance + MULTIPART_SLACK, assets.upload_read_chunk_bytes)
        self.start_receiving()

    def holds_data(self) -> bool:
        return self.upload is not None and self.upload.sink is not None

    async def discard(self) -> None:
        if self.upload is not None:
            await self.upload.discard()

    async def data_received(self, chunk: bytes) -> None:
        if self.failed or self._finished or not self.receiving:
            return  # also the body of a request prepare() let through unread (OPTIONS)
        self.got_bytes()
        assert self.upload is not None
        try:
            await self.upload.feed(chunk)
        except ApiError as exc:
            await self.abort_with(exc)
        except OSError as exc:
            await self.abort_with(storage_error(exc))

    async def post(self, category: str) -> None:
        self.stop_receiving()
        if self.failed or self._finished:
            return
        assert self.upload is not None
        try:
            asset = await self.upload.commit(lambda: self.raw_argument("tags"))
        finally:
            await self.discard()
        self.set_header("Location", f"{self.base_url}notebench/api/assets/{asset['id']}")
        self.write_json(asset, status=201)


class DownloadHandler(AssetsHandler):
    """``GET assets/download/{id}``: streamed, Range, ETag = the stored sha256.

    The body goes by ``sendfile`` where the connection allows it, else through Tornado in
    chunks read in a thread (multiple ranges always do); a folder is a zip made on the fly.
    """

    sender: DirectSender | None = None

    async def get(self, asset_id: str) -> None:
        await self.serve(asset_id, body=True)

    async def head(self, asset_id: str) -> None:
        await self.serve(asset_id, body=False)

    async def serve(self, asset_id: str, *, body: bool) -> None:
        plan: DownloadPlan = await plan_download(self.assets, asset_id, self.request.headers)
        try:
            self.set_status(plan.status)
            for key, value in plan.headers.items():
                self.set_header(key, value)
            content_type = plan.headers.get("Content-Type", "application/octet-stream")
            if plan.error is not None:  # 416: keep Content-Range (send_error would clear it)
                self.finish(orjson.dumps(plan.error.body()), set_content_type=content_type)
                return
            if plan.status == 304 or not body:
                self.finish(set_content_type=content_type)
                return
            try:
                if plan.archive is not None:
                    await self.send_archive(plan)
                elif not await self.send_direct(plan):
                    await self.send_chunks(plan)
            except iostream.StreamClosedError:
                return
            self.finish(set_content_type=content_type)
        finally:
            plan.close()

    async def send_direct(self, plan: DownloadPlan) -> bool:
        """One range (or the whole file) by ``sendfile``; False when the connection can't."""
        if plan.boundary is not None or len(plan.ranges) != 1 or plan.fd is None:
            return False
        connection = self.request.connection
        stream = direct_stream(connection)
        if stream is None:
            return False
        start, end = plan.ranges[0]
        await self.flush()  # the headers alone
        if not expects_raw_body(connection, end - start):
            return False  # a transform reframed the body: Tornado writes it
        self.sender = DirectSender(connection, stream)
        await self.sender.send(plan.fd, start, end)
        return True

    async def send_chunks(self, plan: DownloadPlan) -> None:
        async for piece in read_chunks(plan):
            self.write(piece)
            await self.flush()

    async def send_archive(self, plan: DownloadPlan) -> None:
        """A folder's zip; a failure mid-way cuts the connection (no complete-looking end)."""
        assert plan.archive is not None
        try:
            await self.flush()  # the headers alone
            stream = chunked_stream(self.request.connection)
            async with contextlib.aclosing(pieces_in_thread(plan.archive())) as pieces:
                async for piece in pieces:
                    if stream is not None:
                        await write_chunk(stream, piece)
                    else:
                        self.write(piece)
                        await self.flush()
        except iostream.StreamClosedError:
            raise
        except Exception as exc:
            self.log.warning("the zip of asset %s stopped mid-way: %s", self.path_args[0],
                             printable(getattr(exc, "message", exc)))
            stream = getattr(self.request.connection, "stream", None)
            if stream is not None:
                stream.close()
            raise

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self.sender is not None:
            self.sender.abort()

    def compute_etag(self) -> None:
        return None  # ours is the stored sha256, set explicitly (never a hash of the body)


class RootsHandler(AssetsHandler):
    """``GET assets/roots``: the categories with usage and free space."""

    async def get(self) -> None:
        self.write_json(await self.assets.roots_info())


class ListHandler(AssetsHandler):
    """``GET assets/list/{category}``: reconciled with the disk, paginated, filtered."""

    async def get(self, category: str) -> None:
        args = {key: self.raw_argument(key) for key in
                ("limit", "cursor", "sort", "name", "type", "tag", "state")}
        self.write_json(await self.assets.list_assets(category, args))


class RegisterHandler(AssetsHandler):
    """``POST assets/register``: a file or folder already inside a root."""

    async def post(self) -> None:
        self.require_writable()
        body = self.body_object()
        path = body.get("path")
        if not isinstance(path, str):
            raise bad_request("path (relative to the category's root) is required",
                              "invalid_path")
        category = str(body.get("category", ""))
        await self.require_write_into(category)
        asset = await self.assets.register(
            category, path, tags=check_tags(body.get("tags")),
            metadata=check_metadata(body.get("metadata")))
        self.write_json(asset)


class ImportHandler(AssetsHandler):
    """``POST assets/import``: copy from a configured import folder into a root."""

    async def post(self) -> None:
        self.require_writable()
        body = self.body_object()
        await self.require_write_into(str(body.get("category", "")))
        asset = await self.assets.linker.import_asset(body)
        self.write_json(asset, status=201)


class AssetHandler(AssetsHandler):
    """``GET``/``PATCH``/``DELETE assets/{id}`` (delete moves it to the trash)."""

    async def get(self, asset_id: str) -> None:
        self.write_json(await self.assets.get(asset_id, manifest=self.flag("manifest")))

    async def patch(self, asset_id: str) -> None:
        self.require_writable()
        body = self.body_object()
        unknown = set(body) - {"tags", "metadata"}
        if unknown:
            raise bad_request(f"only tags and metadata can change (not {sorted(unknown)})")
        self.write_json(await self.assets.update(asset_id, tags=body.get("tags"),
                                                 metadata=body.get("metadata")))

    async def delete(self, asset_id: str) -> None:
        self.require_writable()
        await self.require_write_into(await self.assets.category_of(asset_id))
        self.write_json(await self.assets.delete(asset_id))


class TrashHandler(AssetsHandler):
    """``GET assets/trash``."""

    async def get(self) -> None:
        self.write_json(await self.assets.trash.list(self.raw_argument("category")))


class TrashPurgeHandler(AssetsHandler):
    """``POST assets/trash/purge``: by age (default: the retention)."""

    async def post(self) -> None:
        self.require_writable()
        body = self.body_object()
        days = body.get("older_than_days")
        if days is not None and (not isinstance(days, (int, float)) or isinstance(days, bool)):
            raise bad_request("older_than_days must be a number")
        category = body.get("category")
        if category is not None and not isinstance(category, str):
            raise bad_request("category must be a string")
        self.write_json(await self.assets.purge_trash(older_than_days=days, category=category))


class TrashRestoreHandler(AssetsHandler):
    """``POST assets/trash/{id}/restore`` (refuses to overwrite)."""

    async def post(self, asset_id: str) -> None:
        self.require_writable()
        await self.require_write_into(await self.assets.category_of(asset_id))
        self.write_json(await self.assets.trash.restore(asset_id))


class TrashItemHandler(AssetsHandler):
    """``DELETE assets/trash/{id}``: purge one."""

    async def delete(self, asset_id: str) -> None:
        self.require_writable()
        self.write_json(await self.assets.trash.purge(asset_id))


def asset_routes() -> list[tuple[str, type]]:
    aid = f"({ID_PATTERN})"
    uid = f"({UPLOAD_ID_PATTERN})"
    return [
        (r"assets/roots", RootsHandler),
        (r"assets/list/([^/]+)", ListHandler),
        (r"assets/upload/([^/]+)", UploadHandler),
        (r"assets/uploads", UploadsHandler),
        (rf"assets/uploads/{uid}", UploadSessionHandler),
        (rf"assets/uploads/{uid}/complete", UploadCompleteHandler),
        (rf"assets/download/{aid}", DownloadHandler),
        (r"assets/register", RegisterHandler),
        (r"assets/import", ImportHandler),
        (r"assets/trash", TrashHandler),
        (r"assets/trash/purge", TrashPurgeHandler),
        (rf"assets/trash/{aid}/restore", TrashRestoreHandler),
        (rf"assets/trash/{aid}", TrashItemHandler),
        (rf"assets/{aid}", AssetHandler),
    ]

