"""The resumable upload protocol's shared pieces: upload ids, the offset headers, digest
checks and the protocol's errors.

The protocol: ``POST .../uploads {name, size, sha256}`` -> 201 with ``Location`` and
``Upload-Offset: 0``; ``PATCH .../uploads/<uid>`` with ``Upload-Offset`` (or ``?offset=``)
and the chunk as body (409 ``offset_mismatch`` with the right offset otherwise); ``HEAD``
or ``GET`` tell the offset; ``POST .../uploads/<uid>/complete`` checks size and digest and
places the file; ``DELETE`` aborts. The assets' uploads and a remote job's ingest uploads
speak it.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from .bounds import MAX_SAFE_INT
from .errors import ApiError, bad_request, conflict

UPLOAD_ID_PATTERN = r"[0-9a-f]{32}"
_UPLOAD_ID = re.compile(UPLOAD_ID_PATTERN)
_SHA256 = re.compile(r"[0-9a-f]{64}")
OFFSET_HEADER = "Upload-Offset"
LENGTH_HEADER = "Upload-Length"


def new_upload_id() -> str:
    return secrets.token_hex(16)


def is_upload_id(value: str | None) -> bool:
    return bool(_UPLOAD_ID.fullmatch(value or ""))


def check_digest(value: Any) -> str | None:
    """A client-sent sha256 (hex, any case), or None; 400 when malformed."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not _SHA256.fullmatch(value.strip().lower()):
        raise bad_request("sha256 must be 64 hexadecimal digits", "invalid_digest")
    return value.strip().lower()


def digest_mismatch(expected: str, got: str) -> ApiError:
    return bad_request("the content does not match the sha256 sent", "digest_mismatch",
                       expected=expected, received=got)


def parse_offset(raw: str | None) -> int:
    """A chunk's offset (the ``Upload-Offset`` header or ``?offset=``); 400 otherwise."""
    try:
        offset = int(raw or "")
    except ValueError:
        raise bad_request(f"send the chunk's offset ({OFFSET_HEADER} header or ?offset=)",
                          "invalid_offset") from None
    if not 0 <= offset <= MAX_SAFE_INT:
        raise bad_request(f"the offset must be between 0 and {MAX_SAFE_INT}",
                          "invalid_offset")
    return offset


def offset_mismatch(reached: int) -> ApiError:
    """409: the chunk does not start at the offset the upload reached."""
    return conflict(f"the upload is at offset {reached}", "offset_mismatch", offset=reached)


def incomplete(reached: int, size: int) -> ApiError:
    """409: ``complete`` before every byte arrived."""
    return conflict(f"the upload has {reached} of {size} bytes", "incomplete", offset=reached)


def upload_busy(what: str) -> ApiError:
    """409: a chunk of this upload is being received (``what`` says which request)."""
    return conflict(what, "upload_busy")
