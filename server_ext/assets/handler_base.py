"""The base of the assets' routes, and of those that stream a request body."""

from __future__ import annotations

import copy
from typing import Any

from tornado.web import RequestHandler

from ..errors import ApiError, bad_request
from ..handlers import NotebenchHandler
from ..tasks import DETACHED
from .idle import Receiving
from .registry import NotebenchAssetRegistry
from .single_upload import connection_closer

MULTIPART_SLACK = 1024 * 1024  # form overhead allowed beyond the file's limit


class AssetsHandler(NotebenchHandler):
    auth_area = "assets"

    @property
    def assets(self) -> NotebenchAssetRegistry:
        return self.services.assets

    def raw_argument(self, name: str) -> str | None:
        """A query argument decoded once (UTF-8), not stripped, control characters kept."""
        values = self.request.query_arguments.get(name)
        if not values:
            return None
        try:
            return values[-1].decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request(f"the {name} argument is not UTF-8", "invalid_name") from None

    def flag(self, name: str) -> bool:
        value = (self.raw_argument(name) or "").lower()
        return value in ("1", "true", "yes", "on")

    def body_object(self) -> dict[str, Any]:
        return self.json_body()

    async def require_write_into(self, category: str) -> None:
        """403 unless the user may put files into (or take them out of) the category's
        root: where notebooks run as jobs' templates, that needs ``execute`` too."""
        if self.assets.runs_code(category) and not await self.is_allowed("execute", "kernels"):
            raise ApiError(403, "forbidden", f"changing the {category} root (job templates) "
                                             "needs execute permission on kernels")


def tune_connection(handler: NotebenchHandler, max_body: int, chunk: int) -> None:
    """Raise this request's body limit; read the body in larger chunks (this connection)."""
    connection = handler.request.connection
    connection.set_max_body_size(max_body)  # type: ignore[union-attr]
    params = getattr(connection, "params", None)
    if params is not None and chunk and getattr(params, "chunk_size", chunk) != chunk:
        params = copy.copy(params)  # the server's object is shared by every connection
        params.chunk_size = chunk
        connection.params = params  # type: ignore[union-attr]
    stream = getattr(connection, "stream", None)
    if stream is not None and chunk and getattr(stream, "read_chunk_size", 0) < chunk:
        stream.read_chunk_size = chunk  # bytes per recv() of this socket


class StreamedBody(AssetsHandler):
    """Shared by streamed uploads: clean-up whatever way the request ends.

    While the body arrives the request holds a ticket of the registry's ``IdleWatch``
    (touched at each chunk); the registry closes the socket of a body idle longer than
    ``upload_idle_timeout``, and the clean-up of a dropped connection runs.
    """

    receiving = False
    failed = False
    ticket: Receiving | None = None

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The methods this route serves (those it defines)."""
        return [m for m in cls.SUPPORTED_METHODS
                if getattr(cls, m.lower()) is not getattr(RequestHandler, m.lower())]

    async def prepare(self) -> None:
        await super().prepare()
        allowed = self.allowed_methods()
        if self.request.method not in allowed:  # before Tornado reads any of the body
            raise ApiError(405, "method_not_allowed", f"{self.request.method} is not served "
                           f"here (allowed: {', '.join(allowed)})")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        super().write_error(status_code, **kwargs)

    def start_receiving(self) -> None:
        self.receiving = True
        self.ticket = self.assets.idle.start(connection_closer(self.request.connection))

    def stop_receiving(self) -> None:
        self.receiving = False
        self.assets.idle.stop(self.ticket)
        self.ticket = None

    def got_bytes(self) -> None:
        if self.ticket is not None:
            self.ticket.touch()

    def holds_data(self) -> bool:
        """Whether a temp file or chunk is still open (``discard`` handles it)."""
        return False

    async def discard(self) -> None:
        """Drop what was received and not kept."""

    async def abort_with(self, error: ApiError) -> None:
        """Answer now (413/415/...), drop what was written; Tornado then closes the socket."""
        self.failed = True
        await self.discard()
        if not self._finished:
            self.send_error(error.status, exc_info=(type(error), error, None))

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if self.receiving:
            self.stop_receiving()
            DETACHED.spawn(self.discard())

    def on_finish(self) -> None:
        self.stop_receiving()
        if self.holds_data():
            DETACHED.spawn(self.discard())
