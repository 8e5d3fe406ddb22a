"""A folder asset as one zip archive, generated while it is sent.

The members are the files of the asset's manifest, named by their paths relative to the
folder, each opened beneath the category's root without following a link at any step
(``open_member``). Entries are stored, not compressed: weights, images and shards hardly
shrink, and a stored entry costs no more than reading the file. ``zipfile`` writes into a
small spool that is emptied about every ``PIECE`` bytes, so one archive holds a few MiB of
memory whatever its size, and nothing is written to disk. Entries and archives over 4 GiB
use zip64. The archive's bytes are not known in advance: no ``Content-Length``, no
ranges, and a member that cannot be read ends the transfer without the zip's directory
(the client sees a failed download, never a short archive that looks complete).
"""

from __future__ import annotations

import os
import stat
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator

from .sendfile import FileShrank

PIECE = 1 << 20
_DOS_EPOCH = (1980, 1, 1, 0, 0, 0)


class _Spool:
    """Where ``zipfile`` writes: a write-only stream with ``tell`` and no ``seek``."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.pending = 0
        self.offset = 0

    def write(self, data: bytes) -> int:
        size = len(data)
        if size:
            self.parts.append(bytes(data))
            self.pending += size
            self.offset += size
        return size

    def tell(self) -> int:
        return self.offset

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        self.pending = 0
        return data


def _date_time(mtime: float) -> tuple[int, int, int, int, int, int]:
    stamp = time.localtime(mtime)[:6]
    return stamp if stamp >= _DOS_EPOCH else _DOS_EPOCH


def zip_pieces(members: Iterable[str], open_member: Callable[[str], int]) -> Iterator[bytes]:
    """The archive in pieces of about ``PIECE`` bytes (each ``next`` belongs in a thread).

    ``open_member(path)`` returns a read-only descriptor of a member (checked by the caller);
    it is closed here.
    """
    spool = _Spool()
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:  # type: ignore[arg-type]
        for path in members:
            fd = open_member(path)
            try:
                st = os.fstat(fd)
                info = zipfile.ZipInfo(path, date_time=_date_time(st.st_mtime))
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                info.file_size = st.st_size  # decides zip64 for this entry
                with archive.open(info, "w") as entry:
                    offset = 0
                    while offset < st.st_size:
                        data = os.pread(fd, min(PIECE, st.st_size - offset), offset)
                        if not data:
                            raise FileShrank(f"{path} shrank while it was being sent")
                        entry.write(data)
                        offset += len(data)
                        if spool.pending >= PIECE:
                            yield spool.take()
            finally:
                os.close(fd)
    yield spool.take()  # the last entries and the central directory
