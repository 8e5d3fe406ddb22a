"""The one trash: a slot per item in a ``.trash`` folder, moves that are renames, retention.

A trash lives inside the root it serves (``<root>/.trash/<item id>/``), so moving in and
restoring are renames within one filesystem, never copies. Where an item's bytes go in
its slot is the caller's choice: under a name (``content``, next to a sidecar record
such as the assets' ``asset.json``), or the slot is the item itself (a job directory,
holding its own ``job.json``). Restoring never replaces what now has the item's name.
The file functions block: run them in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .errors import ApiError, bad_request, conflict, not_found

TRASH_DIR = ".trash"
DAY_SECONDS = 86400


@dataclass(frozen=True)
class Usage:
    """What a trash holds: its items, their regular files and bytes (hard links once)."""

    items: int = 0
    files: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Trash:
    """The trash folder ``folder``: ``content`` names where an item lies in its slot
    (``None``: the slot is the item, a folder); ``sidecar`` names its record file."""

    folder: Path
    content: str | None = None
    sidecar: str | None = None

    def slot(self, item_id: str) -> Path:
        return self.folder / item_id

    def item(self, item_id: str) -> Path:
        """Where the item's own bytes are while it is trashed."""
        slot = self.slot(item_id)
        return slot if self.content is None else slot / self.content

    def move_in(self, item_id: str, source: Path | None,
                record: dict[str, Any] | None = None) -> Path:
        """Rename ``source`` into a fresh slot (``None``: an empty slot), writing
        ``record`` as the sidecar; what the slot held before is dropped. The slot."""
        slot = self.slot(item_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        remove(slot)
        if self.content is None:
            if source is None:
                slot.mkdir()
            else:
                os.rename(source, slot)
            self._write_record(slot, record)
            return slot
        slot.mkdir()
        self._write_record(slot, record)  # first: the bytes never sit in a slot without it
        if source is not None:
            os.rename(source, slot / self.content)
        return slot

    def restore(self, item_id: str, target: Path, *, missing: ApiError | None = None,
                taken: ApiError | None = None) -> None:
        """Move a trashed item back to ``target`` (its parent must exist). ``missing``
        (404) when nothing of it is trashed or it is a link; ``taken`` (409
        ``name_exists``) when something has the name now: nothing is ever replaced."""
        if missing is None:
            missing = not_found("nothing of this item is in the trash", "not_in_trash")
        if taken is None:
            taken = conflict("something else now has this name; move it away first",
                             "name_exists")
        source = self.item(item_id)
        try:
            mode = os.lstat(source).st_mode
        except OSError:
            raise missing from None
        if stat.S_ISLNK(mode) or (self.content is None and not stat.S_ISDIR(mode)):
            raise missing
        if os.path.lexists(target):
            raise taken
        try:
            if stat.S_ISDIR(mode):
                os.rename(source, target)  # the check above guards the one overwritable case
            else:
                os.link(source, target)  # fails (EEXIST) rather than replacing a file
                os.unlink(source)
        except OSError as exc:  # something took the name between the check and the move
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
                raise taken from None
            raise
        if self.content is not None:
            shutil.rmtree(self.slot(item_id), ignore_errors=True)

    def purge(self, item_id: str) -> None:
        """Delete a trashed item (and its record) for good."""
        remove(self.slot(item_id))

    def usage(self) -> Usage:
        """The slots (real folders) of the trash and their files, sidecars left out."""
        try:
            slots = [p for p in self.folder.iterdir() if p.is_dir() and not p.is_symlink()]
        except OSError:
            return Usage()
        seen: set[tuple[int, int]] = set()
        files = size = 0
        for slot in slots:
            count, total = tally(slot, seen=seen, skip=self.sidecar)
            files += count
            size += total
        return Usage(items=len(slots), files=files, bytes=size)

    def _write_record(self, slot: Path, record: dict[str, Any] | None) -> None:
        if record is not None and self.sidecar is not None:
            (slot / self.sidecar).write_bytes(orjson.dumps(record, option=orjson.OPT_INDENT_2))


def remove(path: Path) -> None:
    """Delete a file, link or folder tree; nothing when it is not there."""
    with contextlib.suppress(FileNotFoundError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def tally(path: Path, *, seen: set[tuple[int, int]] | None = None,
          skip: str | None = None) -> tuple[int, int]:
    """(files, bytes) of the regular files under ``path``: links not followed, a file
    with hard links counted once (``seen`` shares that across calls), the file named
    ``skip`` directly in ``path`` left out."""
    seen = set() if seen is None else seen
    top = os.fspath(path)
    files = total = 0
    for folder, _dirs, names in os.walk(top, followlinks=False):
        for name in names:
            if name == skip and folder == top:
                continue
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            files += 1
            total += st.st_size
    return files, total


def dir_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links not followed, hard links once)."""
    return tally(path)[1]


def retention_cutoff(older_than_days: float, *, now: float | None = None,
                     code: str = "invalid_request") -> float:
    """The time before which trashed items go: ``now`` (default: the wall clock) less
    ``older_than_days``; ``400 code`` when that is negative."""
    if older_than_days < 0:
        raise bad_request("older_than_days must not be negative", code)
    return (time.time() if now is None else now) - older_than_days * DAY_SECONDS
