"""``POST assets/import``: copy a file or folder from a configured import folder into a root.

The source is opened without following links (``open_beneath``), hashed while copied to
a temp file in the root's temp folder, fsynced, type-checked, then placed like an
upload. A folder is copied file by file the same way; links and foreign hard links in
it are refused. These helpers run in a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..errors import ApiError
from .hashing import LinkCheck, open_entry, refuse_hard_links, walk_tree
from .paths import open_beneath
from .sniff import HEAD_BYTES

CHUNK = 1 << 20


@dataclass
class Copied:
    sha256: str
    size: int
    head: bytes


def copy_fd(src_fd: int, dst: Path, limit: int) -> Copied:
    """Copy an open file to a new ``dst``, hashing; fsync; 413 past ``limit``."""
    hasher = hashlib.sha256()
    size = 0
    head = b""
    out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        while True:
            chunk = os.read(src_fd, CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "too_large", "the file is larger than this category "
                                                 f"allows ({limit} bytes)", max_bytes=limit)
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            hasher.update(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view):]
        os.fsync(out)
    except BaseException:
        os.close(out)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dst)
        raise
    os.close(out)
    return Copied(hasher.hexdigest(), size, head)


def copy_file(base: Path, rel: PurePosixPath, dst: Path, *, limit: int,
              link_ok: LinkCheck) -> Copied:
    fd = open_beneath(base, rel)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ApiError(400, "not_a_file", "the path is not a regular file")
        refuse_hard_links(st, link_ok, "the file")
        if st.st_size > limit:
            raise ApiError(413, "too_large", "the file is larger than this category "
                                             f"allows ({limit} bytes)", max_bytes=limit)
        return copy_fd(fd, dst, limit)
    finally:
        os.close(fd)


def copy_tree(src: Path, dst: Path, *, limit: int, allow_hidden: bool,
              link_ok: LinkCheck) -> int:
    """Copy a folder (regular files and folders only) to a new ``dst``; total bytes."""
    total = 0
    os.mkdir(dst)
    try:
        for rel, entry, is_dir in walk_tree(src, allow_hidden=allow_hidden, link_ok=link_ok):
            if is_dir:
                os.mkdir(dst / rel)
                continue
            fd = open_entry(entry)
            try:
                total += copy_fd(fd, dst / rel, limit - total).size
            finally:
                os.close(fd)
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise
    return total
