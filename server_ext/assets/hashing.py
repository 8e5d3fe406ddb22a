"""Hashing files and directories (always in a thread, never on the event loop)."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import ApiError
from .paths import RESERVED
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


def walk_tree(path: Path, *, allow_hidden: bool,
              link_ok: LinkCheck) -> Iterator[tuple[PurePosixPath, os.DirEntry[str], bool]]:
    """Every folder and regular file under ``path``, each folder before what it holds:
    ``(relative path, entry, is_dir)``. A symbolic link is refused (400), and so is a file
    with other hard links that ``link_ok`` does not allow (403); other kinds are skipped."""
    pending = [PurePosixPath()]
    while pending:
        rel_dir = pending.pop()
        with os.scandir(path / rel_dir) as entries:
            for entry in entries:
                if entry.name in RESERVED or (entry.name.startswith(".") and not allow_hidden):
                    continue
                rel = rel_dir / entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise ApiError(400, "link_refused",
                                   f"the folder contains a symbolic link: {rel}")
                if stat.S_ISDIR(st.st_mode):
                    pending.append(rel)
                    yield rel, entry, True
                elif stat.S_ISREG(st.st_mode):
                    refuse_hard_links(st, link_ok, f"the folder's file {rel}")
                    yield rel, entry, False


def open_entry(entry: os.DirEntry[str]) -> int:
    """A file descriptor of a walked file (never through a link swapped in meanwhile)."""
    return os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


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
