"""Streaming an upload into a temporary file (``FileSink``, shared with the jobs' ingest
uploads in ``notebench.server.filesink``), with the head the assets' type checks see."""

from __future__ import annotations

import errno

from .. import filesink
from ..errors import ApiError
from ..filesink import TypeCheck, start_writeback, too_large
from .sniff import HEAD_BYTES, Sniffed

__all__ = ["FileSink", "TypeCheck", "start_writeback", "storage_error", "too_large"]


def storage_error(exc: OSError) -> ApiError:
    """507 for a full disk (or quota), else 500: a write of an upload failed."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return ApiError(507, "insufficient_storage", "the disk is full")
    return ApiError(500, "write_failed", "the file could not be written")


class FileSink(filesink.FileSink):
    """One temporary file being written; a type check sees ``sniff.HEAD_BYTES``."""

    head_bytes = HEAD_BYTES
    sniffed: Sniffed | None
