"""A root's trash: ``<root>/.trash/<asset id>/`` holds the file as ``content`` and ``asset.json``.

The trash itself is the core's (``notebench.server.trash``); here the asset's paths are
checked (no link on the way, inside the root) before it moves. The sidecar
``asset.json`` keeps the asset's record next to its bytes, so a trash stays meaningful
without the store. These functions run in a thread.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from ..errors import conflict
from ..trash import Trash
from .paths import locate, make_dirs_inside, path_not_found, real_root
from .roots import Category

SIDECAR = "asset.json"
CONTENT = "content"


def trash_of(category: Category) -> Trash:
    return Trash(real_root(category.trash), content=CONTENT, sidecar=SIDECAR)


def move_to_trash(category: Category, rel: PurePosixPath, asset: dict[str, Any]) -> str:
    """Move an asset's file or folder into the trash; the trash path (relative to the root)."""
    source = locate(category.path, rel)
    trash_of(category).move_in(asset["id"], source, {**asset, "rel_path": rel.as_posix()})
    return f".trash/{asset['id']}/{CONTENT}"


def restore_from_trash(category: Category, asset_id: str, rel: PurePosixPath) -> None:
    """Move a trashed asset back to ``rel``; 409 when something is there now."""
    if len(rel.parts) > 1:
        make_dirs_inside(category.path, rel.parent)
    target = locate(category.path, rel, must_exist=False)
    trash_of(category).restore(
        asset_id, target, missing=path_not_found(),
        taken=conflict("something else now has this name; rename or delete it first",
                       "name_exists"))


def purge_slot(category: Category, asset_id: str) -> None:
    """Delete a trashed asset's bytes for good."""
    trash_of(category).purge(asset_id)


def trash_usage(category: Category) -> tuple[int, int]:
    """(files, bytes) in a root's trash."""
    usage = trash_of(category).usage()
    return usage.files, usage.bytes
