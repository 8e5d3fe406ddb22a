"""The workspace: notebench's folder inside the server root, seeded and locked.

Layout: the asset roots (``models/``, ``datasets/``, ``checkpoints/``, ``notebooks/``,
``artifacts/``), ``dashboards/`` (the Voila apps) and the hidden ``.notebench/`` with the
store and the owner lock. One server owns a workspace; another one on the same folder
runs read-only and says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notebench._resources import package_data_dir
from notebench.hardware.system import filesystem_of

log = logging.getLogger("notebench.workspace")

ASSET_ROOTS = ("models", "datasets", "checkpoints", "notebooks", "artifacts")
# shipped folder -> workspace folder
SEEDED = {"notebooks": "notebooks", "voila_apps": "dashboards", "datasets": "datasets"}
STATE_DIR = ".notebench"


@dataclass
class Workspace:
    """Paths of the workspace and its ownership."""

    path: Path
    read_only: bool = False
    owner: dict[str, Any] = field(default_factory=dict)
    journal_mode: str = "wal"
    warnings: list[str] = field(default_factory=list)
    _lock_fd: int | None = None

    @property
    def state_dir(self) -> Path:
        return self.path / STATE_DIR

    @property
    def store_path(self) -> Path:
        return self.state_dir / "state.sqlite"

    @property
    def tmp_dir(self) -> Path:
        return self.state_dir / "tmp"

    def root(self, category: str) -> Path:
        return self.path / category

    def read_only_reason(self) -> str:
        owner = self.owner
        return (
            f"this server only reads the workspace {self.path}: it is owned by the server with "
            f"pid {owner.get('pid')} on {owner.get('host')} ({owner.get('url') or 'url unknown'})"
        )

    # -- set-up ------------------------------------------------------------------------

    def prepare(self, *, journal_mode: str = "auto") -> None:
        """Create the folders, take the owner lock (or go read-only), pick a journal mode."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        fs = filesystem_of(self.path)
        if journal_mode == "auto":
            if fs.get("is_network_fs"):
                self.journal_mode = "delete"
                self._warn(
                    f"the workspace is on a network filesystem ({fs.get('fstype')}): SQLite's WAL "
                    "needs shared memory that such filesystems do not provide; using the "
                    "rollback journal (slower, and one server at a time)"
                )
            else:
                self.journal_mode = "wal"
        else:
            self.journal_mode = journal_mode
        if self.read_only:
            self._warn(self.read_only_reason())
            return
        for category in ASSET_ROOTS:
            self.root(category).mkdir(exist_ok=True)
        self.tmp_dir.mkdir(exist_ok=True)

    def record_owner(self, url: str | None) -> None:
        """Write who owns the workspace (read by a second server)."""
        if self.read_only or self._lock_fd is None:
            return
        info = {"pid": os.getpid(), "host": socket.gethostname(), "url": url,
                "started": time.time()}
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, json.dumps(info).encode(), 0)
        self.owner = info

    def release(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    def _take_lock(self) -> None:
        fd = os.open(self.state_dir / "owner.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                self.owner = json.loads(os.pread(fd, 4096, 0) or b"{}")
            except ValueError:
                self.owner = {}
            os.close(fd)
            self.read_only = True
            return
        self._lock_fd = fd
        self.read_only = False

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    # -- seeding -----------------------------------------------------------------------

    def seed(self) -> list[str]:
        """Copy shipped templates and dashboards in; never overwrite a user's change.

        A manifest remembers the hash of every file as notebench wrote it: a file whose
        content still has that hash may be updated to a newer shipped version; a file the
        user changed, or deleted, is left as the user left it.
        """
        if self.read_only:
            return []
        manifest_path = self.state_dir / "seeded.json"
        try:
            manifest: dict[str, str] = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            manifest = {}
        written: list[str] = []
        for shipped, target in SEEDED.items():
            try:
                source_root = package_data_dir(shipped)
            except FileNotFoundError:
                self._warn(f"this install ships no {shipped!r} files to seed")
                continue
            for source in sorted(source_root.rglob("*")):
                if not source.is_file() or _skipped(source.relative_to(source_root)):
                    continue
                rel = f"{target}/{source.relative_to(source_root).as_posix()}"
                dest = self.path / rel
                new_hash = _sha256(source)
                old_hash = manifest.get(rel)
                if dest.exists():
                    current = _sha256(dest)
                    if current == new_hash:
                        manifest[rel] = new_hash
                        continue
                    if old_hash is None or current != old_hash:
                        continue  # the user's own file or the user's edit: keep it
                elif old_hash is not None:
                    continue  # the user deleted it
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f".{dest.name}.notebench-tmp")
                shutil.copyfile(source, tmp)
                os.replace(tmp, dest)
                manifest[rel] = new_hash
                written.append(rel)
        tmp_manifest = manifest_path.with_suffix(".tmp")
        tmp_manifest.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(tmp_manifest, manifest_path)
        return written


def _skipped(rel: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in rel.parts)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
