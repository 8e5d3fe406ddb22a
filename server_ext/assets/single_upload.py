"""``SingleUpload``: the pipeline of one ``POST assets/upload/{category}`` body.

The name is checked (and its type by extension, and that it is free) before any byte is
written; the body, raw or ``multipart/form-data``, streams into a ``FileSink`` that
sniffs the content's type, enforces the size limit and computes the sha256; at the end
the digest is compared with the one the client sent and the file is placed and
registered. The handler parses the request, feeds the chunks and writes the answer.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import bad_request
from .fields import check_tags
from .multipart import MultipartStream
from .paths import check_name
from .sink import FileSink, storage_error
from .sniff import Sniffed, detect, extension_allowed, unsupported_type
from .uploads import STREAM_PREFIX, check_digest, digest_mismatch

if TYPE_CHECKING:
    from .registry import NotebenchAssetRegistry
    from .roots import Category

TRUE_WORDS = ("1", "true", "yes", "on")


def connection_closer(connection: Any) -> Callable[[], None]:
    """What the registry's ``IdleWatch`` runs for an idle body: close its socket (the
    request's own clean-up then runs, as for any dropped connection)."""

    def close() -> None:
        stream = getattr(connection, "stream", None)
        if stream is not None:
            stream.close()

    return close


class SingleUpload:
    """One file streamed to a temp file in its root, then placed under its name."""

    def __init__(self, registry: NotebenchAssetRegistry, category: Category, *,
                 overwrite: bool, expected: str | None,
                 form: MultipartStream | None = None) -> None:
        self.registry = registry
        self.category = category
        self.overwrite = overwrite
        self.expected = expected
        self.form = form
        self.name: str | None = None
        self.sink: FileSink | None = None

    async def start_file(self, raw_name: str) -> None:
        """Check the name, refuse taken names early, open the temp file."""
        registry = self.registry
        name = check_name(raw_name, allow_hidden=registry.hidden_allowed)
        category = self.category
        if not extension_allowed(name, category.types):
            raise unsupported_type("this kind of file is not allowed here")
        await registry.check_free(category, name, self.overwrite)
        self.name = name
        temp = registry.tmp_dir(category) / f"{STREAM_PREFIX}{secrets.token_hex(12)}.part"

        def check(head: bytes, complete: bool) -> Sniffed:
            return detect(name, head, complete, category.types)

        sink = FileSink(temp, limit=category.max_bytes, type_check=check,
                        batch_bytes=registry.upload_batch_bytes)
        await sink.open()
        self.sink = sink

    async def feed(self, chunk: bytes) -> None:
        """A chunk of the body (ApiError: refuse it; OSError: the disk failed)."""
        if self.form is None:
            assert self.sink is not None
            await self.sink.feed(chunk)
            return
        pieces = self.form.feed(chunk)
        if self.sink is None and self.form.file_started:
            await self.start_file(self.form.filename or "")
        for piece in pieces:
            assert self.sink is not None
            await self.sink.feed(piece)

    async def commit(self, raw_tags: Callable[[], str | None]) -> dict[str, Any]:
        """The whole body arrived: check the digest, place and register the file
        (``raw_tags`` gives the request's ``tags`` argument, read once the digest matched)."""
        if self.form is not None:
            self.form.finish()
            fields = self.form.fields
            self.expected = self.expected or check_digest(fields.get("sha256"))
            if fields.get("overwrite", "").lower() in TRUE_WORDS:
                self.overwrite = True
        sink = self.sink
        if sink is None or self.name is None:
            raise bad_request("the form has no file part", "invalid_multipart")
        try:
            digest = await sink.finish()
        except OSError as exc:
            raise storage_error(exc) from None
        assert digest is not None and sink.sniffed is not None
        if self.expected and digest != self.expected:
            raise digest_mismatch(self.expected, digest)
        tags = check_tags(_tag_list(raw_tags()))
        asset = await self.registry.place_file(
            self.category, self.name, sink.path, sha256=digest, size=sink.size,
            sniffed=sink.sniffed, overwrite=self.overwrite, source="upload", tags=tags,
            metadata={})
        self.sink = None  # placed: nothing left to remove
        return asset

    async def discard(self) -> None:
        """Remove the temp file, if any is left (idempotent)."""
        sink, self.sink = self.sink, None
        if sink is not None:
            await sink.close(remove=True)


def _tag_list(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    return [t for t in raw.split(",") if t.strip()]
