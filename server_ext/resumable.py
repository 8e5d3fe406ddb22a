"""The resumable upload protocol's shared pieces: upload ids, the offset headers, digest
checks and the protocol's errors.

The protocol: ``POST .../uploads {name, size, sha256}`` -> 201 with ``Location`` and
``Upload-Offset: 0``; ``PATCH .../uploads/<uid>`` with ``Upload-Offset`` (or ``?offset=``)
and the chunk as body (409 ``offset_mismatch`` with the right offset otherwise); ``HEAD``
or ``GET`` tell the offset; ``POST .../uploads/<uid>/complete`` checks size and digest and
places the file; ``DELETE`` aborts. The assets' uploads and a remote job's ingest uploads
speak it.

The assets' upload routes also speak tus 1.0.0 (creation, termination, checksum) to a request
that sends ``Tus-Resumable``; its headers and their parsing are here too.
"""

from __future__ import annotations

import base64
import binascii
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

TUS_HEADER = "Tus-Resumable"
TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,checksum"
TUS_CHECKSUMS = "sha256"
TUS_CONTENT_TYPE = "application/offset+octet-stream"
METADATA_HEADER = "Upload-Metadata"
CHECKSUM_HEADER = "Upload-Checksum"
_DIGITS = re.compile(r"[0-9]{1,16}")
_METADATA_KEY = re.compile(r"[!-+\--~]+")  # printable ASCII but space and comma


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


# -- tus 1.0.0 -------------------------------------------------------------------------------


def tus_version_refused() -> ApiError:
    """412: the request's ``Tus-Resumable`` is not a version served here."""
    return ApiError(412, "unsupported_version",
                    f"only tus {TUS_VERSION} is served here", supported=[TUS_VERSION])


def parse_length(raw: str | None) -> int:
    """``Upload-Length``: the whole upload's size; 400 when absent or malformed."""
    if raw is None or not _DIGITS.fullmatch(raw.strip()) or int(raw) > MAX_SAFE_INT:
        raise bad_request(f"send the upload's size ({LENGTH_HEADER}: a non-negative integer; "
                          "deferred lengths are not supported)", "invalid_length")
    return int(raw)


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise bad_request(f"{what} is not valid base64", "invalid_base64") from None


def parse_metadata(raw: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (a key alone is an
    empty value), decoded strictly to UTF-8 text; 400 on any flaw."""
    found: dict[str, str] = {}
    if raw is None or not raw.strip():
        return found
    for pair in raw.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if len(parts) > 2 or not _METADATA_KEY.fullmatch(key):
            raise bad_request(f"{METADATA_HEADER}: malformed pair {pair.strip()[:80]!r}",
                              "invalid_metadata")
        if key in found:
            raise bad_request(f"{METADATA_HEADER}: {key} appears twice", "invalid_metadata")
        value = _b64(parts[1], f"{METADATA_HEADER} {key}") if len(parts) == 2 else b""
        try:
            found[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request(f"{METADATA_HEADER}: {key} is not UTF-8 text",
                              "invalid_metadata") from None
    return found


def parse_checksum(raw: str | None) -> bytes | None:
    """``Upload-Checksum: sha256 <base64>``: the chunk's expected digest, or None; 400 for
    another algorithm or a malformed value."""
    if raw is None:
        return None
    algorithm, _, value = raw.strip().partition(" ")
    if algorithm.lower() != "sha256":
        raise bad_request(f"{CHECKSUM_HEADER}: only sha256 is supported", "unsupported_checksum",
                          supported=[TUS_CHECKSUMS])
    digest = _b64(value.strip(), CHECKSUM_HEADER)
    if len(digest) != 32:
        raise bad_request(f"{CHECKSUM_HEADER}: a sha256 digest is 32 bytes", "invalid_checksum")
    return digest


def checksum_mismatch() -> ApiError:
    """460 (tus's Checksum Mismatch): the chunk was dropped, the offset did not move."""
    return ApiError(460, "checksum_mismatch",
                    "the chunk does not match its Upload-Checksum; it was discarded")
