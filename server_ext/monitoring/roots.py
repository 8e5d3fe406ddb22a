"""The file systems the sampler reports free space of: one figure (and one
``disk_free_low`` alert) per file system, not per folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..seams import AssetsView


def sample_roots(workspace: Path, assets: AssetsView | None) -> list[tuple[str, Path]]:
    """The workspace, and each asset root on another file system (blocking: a thread)."""
    roots = [("workspace", workspace)]
    devices = {device_of(workspace)}
    for name, category in (assets.categories if assets is not None else {}).items():
        device = device_of(Path(category.path))
        if device not in devices:
            devices.add(device)
            roots.append((str(name), Path(category.path)))
    return roots


def device_of(path: Path) -> int | None:
    """The file system (st_dev) holding ``path`` or its nearest existing parent."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return path.stat().st_dev
    except OSError:
        return None
