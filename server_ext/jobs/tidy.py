"""A job directory into the trash and back, and its disk use (blocking: run in threads).

The trash of jobs follows the assets' conventions (``server_ext/assets/trash.py``): a
slot per item inside the same filesystem (``<runs dir>/.trash/<job id>/``), so deleting
and restoring are renames, never copies; the slot keeps ``job.json`` next to the files,
so a trash stays meaningful without the store. Hidden, the trash is skipped by the asset
scanner and by the discovery of interactive runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path

from ..errors import conflict, not_found

TRASH_DIR = ".trash"


def trash_slot(runs_dir: Path, job_id: str) -> Path:
    return runs_dir / TRASH_DIR / job_id


def move_to_trash(runs_dir: Path, job_id: str, job_dir: Path) -> Path:
    """Move a job directory into its trash slot (a missing directory leaves an empty slot)."""
    slot = trash_slot(runs_dir, job_id)
    slot.parent.mkdir(parents=True, exist_ok=True)
    if slot.exists():
        shutil.rmtree(slot)
    if job_dir.is_dir():
        os.rename(job_dir, slot)
    else:
        slot.mkdir()
    return slot


def restore_from_trash(runs_dir: Path, job_id: str, job_dir: Path) -> None:
    """Move a trashed job directory back; 409 when something now has its name."""
    slot = trash_slot(runs_dir, job_id)
    if not slot.is_dir() or slot.is_symlink():
        raise not_found(f"job {job_id} has no files in the trash", "not_in_trash")
    if os.path.lexists(job_dir):
        raise conflict("something else now has the job directory's name; move it away "
                       "first", "name_exists")
    job_dir.parent.mkdir(parents=True, exist_ok=True)
    os.rename(slot, job_dir)


def purge_slot(runs_dir: Path, job_id: str) -> None:
    """Delete a trashed job's files for good."""
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(trash_slot(runs_dir, job_id))


def dir_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links not followed, hard links once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for folder, _dirs, names in os.walk(path, followlinks=False):
        for name in names:
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
            total += st.st_size
    return total


def trash_usage(runs_dir: Path) -> tuple[int, int]:
    """(jobs, bytes) in the trash of jobs."""
    root = runs_dir / TRASH_DIR
    try:
        slots = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return 0, 0
    return len(slots), sum(dir_size(p) for p in slots)
