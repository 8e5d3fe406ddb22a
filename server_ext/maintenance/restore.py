"""Restoring a backup into a workspace's store, with no server running on it.

The workspace's owner lock is held throughout (``ownership``). The backup's manifest is
checked, its database copied beside the store while its sha256 is computed, compared with
the manifest's, its schema checked against this notebench's (a newer one is refused) and
its structure quick-checked. Job directories recorded under another workspace path (a
backup taken elsewhere) are moved to this workspace's. Only then does the copy replace the
store; the previous database (with its WAL) is kept in ``.notebench/pre-restore-<time>/``.
Any refusal leaves the workspace as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from notebench.jobprotocol import fsync_dir

from ..jobs import store as jobstore
from .backup import DATABASE, FORMAT, FORMAT_VERSION, MANIFEST
from .dbfacts import has_table, integrity_problems, newer_than_code, schema_versions
from .errors import EXIT_INVALID, MaintenanceError
from .ownership import held_workspace

_CHUNK = 1 << 20
_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def read_backup(src: Path) -> tuple[dict[str, Any], Path]:
    """The manifest and database file of the backup folder ``src`` (or its manifest),
    checked for shape; ``MaintenanceError`` when it is not a notebench backup."""
    src = Path(src)
    if src.is_file() and src.name == MANIFEST:
        src = src.parent
    if not src.exists():
        raise MaintenanceError(f"no backup at {src}", EXIT_INVALID)
    if not src.is_dir():
        raise MaintenanceError(f"{src} is not a backup folder (one holds {MANIFEST} and "
                               f"{DATABASE})", EXIT_INVALID)
    try:
        manifest = json.loads((src / MANIFEST).read_bytes())
    except (OSError, ValueError) as exc:
        raise MaintenanceError(f"{src} is not a notebench backup: its {MANIFEST} is missing "
                               f"or not JSON ({exc})", EXIT_INVALID) from None
    database = manifest.get("database") if isinstance(manifest, dict) else None
    if (not isinstance(manifest, dict) or manifest.get("format") != FORMAT
            or not isinstance(database, dict) or database.get("file") != DATABASE
            or not isinstance(database.get("sha256"), str)
            or not isinstance(database.get("size"), int)):
        raise MaintenanceError(f"{src / MANIFEST} is not a notebench backup manifest",
                               EXIT_INVALID)
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise MaintenanceError(f"the backup's format ({version}) is newer than this "
                               "notebench reads: upgrade notebench", EXIT_INVALID)
    db = src / DATABASE
    if not db.is_file():
        raise MaintenanceError(f"the backup {src} has no {DATABASE}", EXIT_INVALID)
    return manifest, db


def restore_backup(src: Path, workspace_path: Path) -> dict[str, Any]:
    """Replace the store of the workspace at ``workspace_path`` by the backup ``src``;
    what was done. Refused (``MaintenanceError``) while a server owns the workspace, or
    when the backup is damaged or newer than this notebench."""
    manifest, db = read_backup(src)
    with held_workspace(workspace_path, "restore") as workspace:
        staged = workspace.state_dir / f".{DATABASE}.restoring-{secrets.token_hex(4)}"
        try:
            _copy_checked(db, staged, manifest["database"])
            moved = _check_and_adapt(staged, manifest.get("workspace"), workspace.path)
            previous = _set_aside(workspace.store_path)
            try:
                os.replace(staged, workspace.store_path)
            except OSError:
                _put_back(previous, workspace.store_path)
                raise
            fsync_dir(workspace.state_dir)
        finally:
            _remove(staged)
    return {"restored": str(workspace.store_path), "backup": str(db.parent),
            "backup_created": manifest.get("created_utc"),
            "previous": str(previous) if previous else None, "job_dirs_moved": moved}


def _copy_checked(db: Path, staged: Path, expected: dict[str, Any]) -> None:
    """Copy the backup's database to ``staged`` (fsynced); the bytes copied must have the
    manifest's size and sha256."""
    digest = hashlib.sha256()
    size = 0
    with db.open("rb") as source, staged.open("xb") as target:
        for chunk in iter(lambda: source.read(_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
            target.write(chunk)
        target.flush()
        os.fsync(target.fileno())
    if size != expected["size"] or digest.hexdigest() != expected["sha256"]:
        raise MaintenanceError(
            f"the backup's {DATABASE} does not match its manifest (sha256 "
            f"{digest.hexdigest()[:12]}…, {size} bytes; the manifest says "
            f"{str(expected['sha256'])[:12]}…, {expected['size']} bytes): it is damaged or "
            "was changed; nothing was restored", EXIT_INVALID)


def _check_and_adapt(staged: Path, old_workspace: Any, new_workspace: Path) -> int:
    """Refuse a database newer than this notebench or damaged; move its job directories
    from the backup's workspace path to this one. How many were moved."""
    try:
        conn = sqlite3.connect(staged, isolation_level=None)
    except sqlite3.Error as exc:  # pragma: no cover - a file we just wrote
        raise MaintenanceError(f"the backup's database cannot be opened: {exc}") from None
    try:
        try:
            newer = newer_than_code(schema_versions(conn))
            problems = integrity_problems(conn, quick=True)
        except sqlite3.DatabaseError as exc:
            raise MaintenanceError(f"the backup's {DATABASE} is not a usable SQLite "
                                   f"database ({exc}); nothing was restored") from None
        if newer:
            raise MaintenanceError("the backup's schema is newer than this notebench's ("
                                   + ", ".join(newer) + "): upgrade notebench to restore "
                                   "it; nothing was restored", EXIT_INVALID)
        if problems:
            raise MaintenanceError("the backup's database failed SQLite's check: "
                                   + "; ".join(problems[:5]) + "; nothing was restored")
        if not isinstance(old_workspace, str) or Path(old_workspace) == new_workspace:
            return 0
        return _move_job_dirs(conn, Path(old_workspace), new_workspace)
    finally:
        conn.close()


def _move_job_dirs(conn: sqlite3.Connection, old: Path, new: Path) -> int:
    """Job rows name their directory by absolute path: rebase those under ``old``."""
    if not has_table(conn, "jobs"):
        return 0
    conn.execute("BEGIN IMMEDIATE")
    moved = 0
    for job_id, job_dir, resume_from in conn.execute(
            "SELECT id, job_dir, resume_from FROM jobs").fetchall():
        fields = {name: str(new / Path(value).relative_to(old))
                  for name, value in (("job_dir", job_dir), ("resume_from", resume_from))
                  if value and Path(value).is_relative_to(old)}
        if fields:
            jobstore.update_job(conn, job_id, **fields)
            moved += "job_dir" in fields
    conn.execute("COMMIT")
    return moved


def _set_aside(store_path: Path) -> Path | None:
    """Move the current database and its journal files into ``pre-restore-<time>/``."""
    present = [store_path.with_name(store_path.name + s) for s in _SIDE_FILES]
    present = [p for p in present if p.exists()]
    if not present:
        return None
    folder = store_path.parent / time.strftime("pre-restore-%Y%m%dT%H%M%S")
    while folder.exists():
        folder = folder.with_name(folder.name + "-" + secrets.token_hex(2))
    folder.mkdir()
    for path in present:
        os.rename(path, folder / path.name)
    fsync_dir(store_path.parent)
    return folder


def _put_back(folder: Path | None, store_path: Path) -> None:
    if folder is None:
        return
    for path in folder.iterdir():
        with contextlib.suppress(OSError):
            os.rename(path, store_path.parent / path.name)


def _remove(path: Path) -> None:
    for suffix in _SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path.with_name(path.name + suffix))
