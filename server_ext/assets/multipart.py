"""A ``multipart/form-data`` body, streamed: python-multipart parses, we route the bytes.

One part carries the file (the first part with a ``filename``); other parts are small
text fields (``name``, ``sha256``, ``overwrite``...). Callbacks of the parser only
record what they see; ``feed`` returns the file bytes of a chunk to the caller, who
streams them into its sink, so the name is known (and checked) before a byte is written.
The headers of a part are bounded (bytes and count; the parser bounds each line too): past
a bound the form is refused with 413 before more of them is kept.
"""

from __future__ import annotations

import re
import urllib.parse

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..errors import ApiError, bad_request

MAX_FIELDS_BYTES = 64 * 1024
DEFAULT_HEADER_BYTES = 8 * 1024
DEFAULT_HEADERS = 8
_FILENAME_STAR = re.compile(r"filename\*\s*=\s*([^;]+)", re.IGNORECASE)


def boundary_of(content_type: str) -> bytes | None:
    """The boundary of a ``multipart/form-data`` content type, else None."""
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data":
        return None
    boundary = params.get(b"boundary")
    if not boundary:
        raise bad_request("multipart/form-data without a boundary", "invalid_multipart")
    return boundary


def _filename(disposition: bytes) -> str | None:
    """The filename of a part (``filename*`` of RFC 5987 preferred), as text."""
    text = disposition.decode("utf-8", "surrogateescape")
    star = _FILENAME_STAR.search(text)
    if star:
        value = star.group(1).strip().strip('"')
        charset, _, encoded = value.partition("''")
        if charset.lower() in ("utf-8", "utf8") and encoded:
            return urllib.parse.unquote(encoded, errors="strict")
    _, params = parse_options_header(disposition)
    raw = params.get(b"filename")
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("the file name is not UTF-8", "invalid_name") from None


class MultipartStream:
    """Parses a streamed form; hands back the file part's bytes chunk by chunk."""

    def __init__(self, boundary: bytes, *, max_header_bytes: int = DEFAULT_HEADER_BYTES,
                 max_headers: int = DEFAULT_HEADERS) -> None:
        callbacks = {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }
        self._parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_started = False  # the file part's headers were read
        self.file_done = False
        self.ended = False
        self._field_bytes = 0
        self._in_file = False
        self._part_name: str | None = None
        self._value = bytearray()
        self._header = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._header_bytes = 0
        self._header_count = 0
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self._out: list[bytes] = []
        self._error: ApiError | None = None

    def feed(self, chunk: bytes) -> list[bytes]:
        """Parse a chunk; the file bytes it contained (possibly none)."""
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            if self._error is None and str(exc).startswith("Maximum header"):
                self._refuse_headers(f"the headers of a form part are too large: {exc}")
            if self._error is not None:
                raise self._error from None
            raise bad_request(f"malformed multipart body: {exc}", "invalid_multipart") from None
        if self._error is not None:
            raise self._error
        out, self._out = self._out, []
        return out

    def finish(self) -> None:
        self._parser.finalize()
        if not self.ended:
            raise bad_request("the multipart body ended early", "invalid_multipart")
        if self.filename is None:
            raise bad_request("the form has no file part", "invalid_multipart")

    # -- parser callbacks ----------------------------------------------------------------

    def _part_begin(self) -> None:
        self._headers = {}
        self._header_bytes = 0
        self._header_count = 0
        self._value = bytearray()
        self._part_name = None

    def _header_room(self, size: int) -> bool:
        """Count ``size`` header bytes of this part; False (and the 413) past the bound."""
        self._header_bytes += size
        if self._header_bytes <= self.max_header_bytes:
            return True
        self._refuse_headers(f"the headers of a form part exceed {self.max_header_bytes} "
                             "bytes")
        return False

    def _refuse_headers(self, message: str) -> None:
        if self._error is None:
            self._error = ApiError(413, "part_headers_too_large", message,
                                   max_header_bytes=self.max_header_bytes,
                                   max_headers=self.max_headers)
        self._header = bytearray()
        self._header_value = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        if self._header_room(end - start):
            self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        if self._header_room(end - start):
            self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refuse_headers(f"a form part has more than {self.max_headers} headers")
        if self._error is not None:
            return
        self._headers[self._header.decode("latin1").lower()] = bytes(self._header_value)
        self._header = bytearray()
        self._header_value = bytearray()

    def _headers_finished(self) -> None:
        if self._error is not None:
            return
        disposition = self._headers.get("content-disposition", b"")
        _, params = parse_options_header(disposition)
        self._part_name = params.get(b"name", b"").decode("utf-8", "replace")
        try:
            filename = _filename(disposition)
        except (ApiError, UnicodeDecodeError):
            self._error = bad_request("the file name is not valid UTF-8", "invalid_name")
            return
        if filename is not None:
            if self.filename is not None:
                self._error = bad_request("only one file per upload", "invalid_multipart")
                return
            self.filename = filename
            self.file_started = True
            self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._out.append(data[start:end])
            return
        self._field_bytes += end - start
        if self._field_bytes > MAX_FIELDS_BYTES:
            self._error = bad_request("form fields are too large", "invalid_multipart")
            return
        self._value += data[start:end]

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self.file_done = True
        elif self._part_name:
            self.fields[self._part_name] = self._value.decode("utf-8", "replace")

    def _end(self) -> None:
        self.ended = True
