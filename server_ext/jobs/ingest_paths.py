"""Where a remote job's forwarded files may go in its server-side job directory, and the
small file helpers the ingest sink and its resumable uploads share."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path, PurePosixPath

from notebench.jobprotocol import (
    CONTROL_FILE,
    ENVIRONMENT,
    EVENTS_FILE,
    JOB_JSON,
    NOTEBOOK,
    PAPERMILL_LOG,
    RUNNER_FILE,
)

from ..errors import ApiError, bad_request, conflict

#: the files a job appends to, forwarded by offset
STREAMS = (EVENTS_FILE, RUNNER_FILE, PAPERMILL_LOG)
#: what a whole-file upload may never replace: the streams and what the server writes
RESERVED = frozenset({*STREAMS, JOB_JSON, NOTEBOOK, ENVIRONMENT, CONTROL_FILE})
INGEST_DIR = ".ingest"
MAX_PATH_CHARS = 1024
MAX_NAME_BYTES = 255
_HASH_BLOCK = 1 << 20


def check_relative(rel: str) -> str:
    """``rel`` when it is a safe path inside a job directory for a whole file: relative,
    no ``..``, ``.`` or empty part, nothing hidden, no control character or backslash,
    not one of the ``RESERVED`` names (400 ``unsafe_path`` otherwise)."""

    def refuse(why: str) -> ApiError:
        return bad_request(f"the file path {rel[:200]!r} is refused: {why}", "unsafe_path")

    if not rel or len(rel) > MAX_PATH_CHARS:
        raise refuse(f"it must have 1 to {MAX_PATH_CHARS} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in rel) or "\\" in rel:
        raise refuse("it holds a control character or a backslash")
    if rel.startswith("/"):
        raise refuse("it is absolute")
    parts = rel.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise refuse("it has an empty, '.' or '..' part")
        if part.startswith("."):
            raise refuse("it has a hidden part")
        if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise refuse(f"a part is longer than {MAX_NAME_BYTES} bytes")
    if rel in RESERVED:
        raise refuse("the server keeps this file itself")
    return str(PurePosixPath(rel))


def storage_error(exc: OSError) -> ApiError:
    """507 for a full disk (or quota), 409 for a path that clashes with a file or folder,
    else 500."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ApiError(507, "insufficient_storage", "the disk is full")
    if isinstance(exc, (FileExistsError, NotADirectoryError, IsADirectoryError)):
        return conflict("the path clashes with a file or folder of the job", "path_conflict")
    return ApiError(500, "write_failed", "the file could not be written")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_HASH_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


