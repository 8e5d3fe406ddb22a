"""The trash of a root: ``<root>/.trash/<asset id>/`` holds the file and ``asset.json``.

Moving is a rename inside one filesystem (the trash is inside its root), so deleting
and restoring never copy. The sidecar ``asset.json`` keeps the asset's record next to
its bytes, so a trash stays meaningful without the store. These functions run in a thread.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from ..errors import conflict
from .paths import locate, make_dirs_inside, path_not_found, real_root
from .roots import Category

SIDECAR = "asset.json"


def trash_slot(category: Category, asset_id: str) -> Path:
    return real_root(category.trash) / asset_id


def move_to_trash(category: Category, rel: PurePosixPath, asset: dict[str, Any]) -> str:
    """Move an asset's file or folder into the trash; the trash path (relative to the root)."""
    source = locate(category.path, rel)
    slot = trash_slot(category, asset["id"])
    if slot.exists():
        shutil.rmtree(slot)
    slot.mkdir(parents=True)
    (slot / SIDECAR).write_bytes(orjson.dumps({**asset, "rel_path": rel.as_posix()},
                                              option=orjson.OPT_INDENT_2))
    target = slot / "content"
    os.rename(source, target)
    return f".trash/{asset['id']}/content"


def restore_from_trash(category: Category, asset_id: str, rel: PurePosixPath) -> None:
    """Move a trashed asset back to ``rel``; 409 when something is there now."""
    slot = trash_slot(category, asset_id)
    source = slot / "content"
    try:
        mode = os.lstat(source).st_mode
    except FileNotFoundError:
        raise path_not_found() from None
    if stat.S_ISLNK(mode):
        raise path_not_found()
    if len(rel.parts) > 1:
        make_dirs_inside(category.path, rel.parent)
    target = locate(category.path, rel, must_exist=False)
    if os.path.lexists(target):
        raise conflict("something else now has this name; rename or delete it first",
                       "name_exists")
    if stat.S_ISDIR(mode):
        os.rename(source, target)  # the check above guards the only overwritable case
    else:
        os.link(source, target)  # fails (EEXIST) rather than replacing a file
        os.unlink(source)
    shutil.rmtree(slot, ignore_errors=True)


def purge_slot(category: Category, asset_id: str) -> None:
    """Delete a trashed asset's bytes for good."""
    slot = trash_slot(category, asset_id)
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(slot)


def trash_usage(category: Category) -> tuple[int, int]:
    """(files, bytes) in a root's trash."""
    files = size = 0
    for folder, _dirs, names in os.walk(category.trash):
        for name in names:
            if name == SIDECAR:
                continue
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(folder, name)).st_size
                files += 1
    return files, size
