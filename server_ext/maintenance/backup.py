"""An online, consistent backup of the store: a new folder with the database and a manifest.

The copy is made with SQLite's backup API in one step, from one read transaction: it is the
database as committed when the copy began, whatever a live server writes meanwhile (with
WAL, the server's writer is not held up; with the rollback journal, its writes wait for
the copy). The copy is switched to the rollback journal (one file), must pass
``PRAGMA integrity_check``, and is described by ``manifest.json`` (notebench version,
schema versions, counts, sha256 and size, time taken). Everything is written under a
hidden temporary name beside the destination and renamed to it at the end: no partial
backup ever carries the destination's name.
"""

from __future__ import annotations

import datetime
import os
import secrets
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import notebench
from notebench.jobprotocol import fsync_dir, write_json_atomic

from .dbfacts import counts, integrity_problems, read_only, schema_versions, sha256_of
from .errors import EXIT_INVALID, MaintenanceError

MANIFEST = "manifest.json"
DATABASE = "state.sqlite"
FORMAT = "notebench-backup"
FORMAT_VERSION = 1
PARTIAL = ".partial-"


def take_backup(store_path: Path, dest: Path, *, workspace: Path | None = None
                ) -> dict[str, Any]:
    """Back up the database at ``store_path`` into the new folder ``dest``; its manifest.

    ``dest`` may exist only as an empty folder. Raises ``MaintenanceError`` when the store
    is missing, the destination is taken or the copy is not sound (nothing is left then).
    """
    began = time.monotonic()
    created = time.time()
    dest = Path(os.path.abspath(dest))
    store_path = Path(store_path)
    if not store_path.is_file():
        raise MaintenanceError(f"no store at {store_path}: nothing to back up", EXIT_INVALID)
    check_destination(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.parent / f".{dest.name}{PARTIAL}{os.getpid()}-{secrets.token_hex(3)}"
    partial.mkdir()
    try:
        try:
            copy_database(store_path, partial / DATABASE)
            with read_only(partial / DATABASE) as conn:
                problems = integrity_problems(conn)
                versions = schema_versions(conn)
                counted = counts(conn)
        except sqlite3.Error as exc:
            raise MaintenanceError(f"the store {store_path} cannot be backed up: {exc}",
                                   EXIT_INVALID) from None
        if problems:
            raise MaintenanceError("the copy failed SQLite's integrity check: "
                                   + "; ".join(problems[:5]), EXIT_INVALID)
        digest, size = sha256_of(partial / DATABASE)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "notebench_version": notebench.__version__,
            "created": created,
            "created_utc": datetime.datetime.fromtimestamp(
                created, datetime.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - began, 3),
            "source": str(store_path.resolve()),
            "workspace": str(workspace) if workspace is not None else None,
            "database": {"file": DATABASE, "sha256": digest, "size": size,
                         "integrity_check": "ok"},
            "schema": versions,
            "counts": counted,
        }
        write_json_atomic(partial / MANIFEST, manifest)
        fsync_dir(partial)
        _publish(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest


def check_destination(dest: Path) -> None:
    """Refuse a destination that exists as anything but an empty folder."""
    if not os.path.lexists(dest):
        return
    if dest.is_symlink() or not dest.is_dir():
        raise MaintenanceError(f"{dest} exists and is not a folder: give a new folder",
                               EXIT_INVALID)
    if any(dest.iterdir()):
        raise MaintenanceError(f"{dest} exists and is not empty: give a new folder",
                               EXIT_INVALID)


def copy_database(source: Path, target: Path) -> None:
    """The database as committed now, copied in one step, as one rollback-journal file."""
    with read_only(source) as src:
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            src.backup(dst)  # all pages in one step: one read transaction, one snapshot
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()


def _publish(partial: Path, dest: Path) -> None:
    """Rename the finished backup to its name (over an empty folder, never a full one)."""
    try:
        os.rename(partial, dest)
    except OSError as exc:
        raise MaintenanceError(f"{dest} could not take the backup ({exc.strerror}): it "
                               "appeared meanwhile or is not an empty folder", EXIT_INVALID
                               ) from None
    fsync_dir(dest.parent)
