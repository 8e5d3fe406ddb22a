"""Hashing files and directories (always in a thread, never on the event loop)."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import ApiError
from .paths import MAX_DEPTH, RESERVED
from .sniff import HEAD_BYTES

CHUNK = 1 << 20

Progress = Callable[[int, int], None]
LinkCheck = Callable[[int, int, int], bool]


@dataclass
class FileFacts:
    """A file as read: stat facts, its digest and its first bytes."""

    size: int
    mtime_ns: int
    dev: int
    ino: int
    nlink: int
    sha256: str | None = None
    head: bytes = b""


@dataclass
class DirFacts:
    """A directory asset: its files' sizes and hashes, and the tree hash."""

    size: int
    mtime_ns: int
    sha256: str
    files: list[dict[str, object]] = field(default_factory=list)


def stat_facts(st: os.stat_result) -> FileFacts:
    return FileFacts(st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino, st.st_nlink)


def read_fd(fd: int, *, digest: bool = True, progress: Progress | None = None) -> FileFacts:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise ApiError(400, "not_a_file", "the path is not a regular file")
    facts = stat_facts(st)
    facts.head = os.pread(fd, HEAD_BYTES, 0)
    if not digest:
        return facts
    hasher = hashlib.sha256()
    done = 0
    last_report = 0
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while True:
        count = os.readv(fd, [buffer])
        if not count:
            break
        hasher.update(view[:count])
        done += count
        if progress is not None and done - last_report >= 64 * CHUNK:
            last_report = done
            progress(done, facts.size)
    if progress is not None:
        progress(done, facts.size)
    facts.sha256 = hasher.hexdigest()
    end = os.fstat(fd)
    if end.st_size != facts.size or end.st_mtime_ns != facts.mtime_ns:
        raise ApiError(409, "changed_while_reading", "the file changed while it was hashed")
    return facts


def tree_hash(files: list[dict[str, object]]) -> str:
    """sha256 over ``<sha256> <size> <path>\\n`` lines, sorted by path."""
    hasher = hashlib.sha256()
    for entry in sorted(files, key=lambda f: str(f["path"])):
        hasher.update(f"{entry['sha256']} {entry['size']} {entry['path']}\n".encode())
    return hasher.hexdigest()


def refuse_hard_links(st: os.stat_result, link_ok: LinkCheck, what: str) -> None:
    """403 when a file has other hard links that ``link_ok`` does not allow."""
    if st.st_nlink > 1 and not link_ok(st.st_dev, st.st_ino, st.st_nlink):
        raise ApiError(403, "hard_link_refused",
                       f"{what} has other hard links (they may lead outside the folder)")


@dataclass(frozen=True)
class WalkedFile:
    """A file as the walk listed it: its folder's descriptor, its name and ``lstat``."""

    dir_fd: int
    name: str
    stat: os.stat_result
    rel: PurePosixPath


_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _changed(rel: PurePosixPath) -> ApiError:
    return ApiError(409, "changed_while_reading",
                    f"the folder changed while it was read: {rel}")


def _link_refused(rel: PurePosixPath) -> ApiError:
    return ApiError(400, "link_refused", f"the folder contains a symbolic link: {rel}")


def _open_dir(name: str | Path, dir_fd: int | None, rel: PurePosixPath,
              listed: os.stat_result | None) -> int:
    """A folder's descriptor, never through a link; still the folder that was listed."""
    try:
        fd = os.open(name, _O_DIR, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _link_refused(rel) from None  # swapped for a link (or a file) meanwhile
        if exc.errno == errno.ENOENT:
            raise _changed(rel) from None
        raise
    st = os.fstat(fd)
    if listed is not None and (st.st_dev, st.st_ino) != (listed.st_dev, listed.st_ino):
        os.close(fd)
        raise _changed(rel)
    return fd


def walk_tree(path: Path, *, allow_hidden: bool,
              link_ok: LinkCheck) -> Iterator[tuple[PurePosixPath, WalkedFile, bool]]:
    """Every folder and regular file under ``path``, each folder before what it holds:
    ``(relative path, entry, is_dir)``. A symbolic link is refused (400), and so is a file
    with other hard links that ``link_ok`` does not allow (403); other kinds are skipped.

    The walk goes by descriptor: each folder is opened from its parent's descriptor with
    ``O_NOFOLLOW`` and must be the one listed, so a folder swapped for a link while the
    walk runs leads nowhere outside ``path``. Open a file's entry with ``open_entry``
    before advancing the walk (its folder's descriptor is open until then).
    """
    root_fd = _open_dir(path, None, PurePosixPath(), None)
    try:
        yield from _walk_fd(root_fd, PurePosixPath(), allow_hidden, link_ok)
    finally:
        os.close(root_fd)


def _walk_fd(dir_fd: int, rel_dir: PurePosixPath, allow_hidden: bool,
             link_ok: LinkCheck) -> Iterator[tuple[PurePosixPath, WalkedFile, bool]]:
    with os.scandir(dir_fd) as listing:
        names = sorted(entry.name for entry in listing)
    for name in names:
        if name in RESERVED or (name.startswith(".") and not allow_hidden):
            continue
        rel = rel_dir / name
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise _changed(rel) from None
        if stat.S_ISLNK(st.st_mode):
            raise _link_refused(rel)
        if stat.S_ISDIR(st.st_mode):
            if len(rel.parts) >= MAX_DEPTH:
                raise ApiError(400, "too_deep", f"the folder is nested deeper than "
                                                f"{MAX_DEPTH} levels: {rel}")
            yield rel, WalkedFile(dir_fd, name, st, rel), True
            child = _open_dir(name, dir_fd, rel, st)
            try:
                yield from _walk_fd(child, rel, allow_hidden, link_ok)
            finally:
                os.close(child)
        elif stat.S_ISREG(st.st_mode):
            refuse_hard_links(st, link_ok, f"the folder's file {rel}")
            yield rel, WalkedFile(dir_fd, name, st, rel), False


def open_entry(entry: WalkedFile) -> int:
    """A descriptor of a walked file: opened from its folder's descriptor without following
    a link, and still the file that was listed (409 otherwise)."""
    try:
        fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=entry.dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOENT):
            raise _changed(entry.rel) from None
        raise
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (entry.stat.st_dev, entry.stat.st_ino):
        os.close(fd)
        raise _changed(entry.rel)
    return fd


def read_dir(path: Path, *, allow_hidden: bool, link_ok: LinkCheck,
             progress: Progress | None = None) -> DirFacts:
    """Manifest of a directory asset: every regular file, hashed; links refused."""
    files: list[dict[str, object]] = []
    total = reported = 0
    latest = os.lstat(path).st_mtime_ns
    for rel, entry, is_dir in walk_tree(path, allow_hidden=allow_hidden, link_ok=link_ok):
        if is_dir:
            continue
        fd = open_entry(entry)
        try:
            facts = read_fd(fd)
        finally:
            os.close(fd)
        total += facts.size
        latest = max(latest, facts.mtime_ns)
        files.append({"path": rel.as_posix(), "size": facts.size, "sha256": facts.sha256})
        if progress is not None and (total - reported >= 64 * CHUNK or len(files) % 1000 == 0):
            reported = total
            progress(total, 0)
    if progress is not None:
        progress(total, 0)
    files.sort(key=lambda f: str(f["path"]))
    return DirFacts(total, latest, tree_hash(files), files)
