"""Holding a workspace as its owner, as a server does, for work no server may see.

Restore and ``doctor --rebuild`` take the owner lock a server takes
(``Workspace.prepare``: an ``flock`` on ``.notebench/owner.lock``) without waiting, keep it
for their whole duration and refuse when a server holds it. A server started meanwhile
finds the lock taken and runs read-only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from ..workspace import Workspace
from .errors import EXIT_OWNED, MaintenanceError

_WORKSPACE_LOG = "notebench.workspace"


@contextlib.contextmanager
def held_workspace(path: Path, action: str) -> Iterator[Workspace]:
    """The workspace at ``path``, its owner lock held until the block ends; refused
    (``EXIT_OWNED``) when a server owns it. ``action`` names the work in the refusal."""
    workspace = Workspace(Path(path))
    logger = logging.getLogger(_WORKSPACE_LOG)
    level = logger.level
    logger.setLevel(logging.ERROR)  # its "this server only reads" warning is not ours
    try:
        workspace.prepare()
    finally:
        logger.setLevel(level)
    try:
        if workspace.read_only:
            raise MaintenanceError(f"cannot {action}: {owner_text(workspace)}; stop that "
                                   "server first", EXIT_OWNED)
        workspace.record_owner(None)  # a server started meanwhile tells who holds it
        yield workspace
    finally:
        workspace.release()


def owner_text(workspace: Workspace) -> str:
    """Who owns the workspace, in words."""
    owner = workspace.owner
    where = ", ".join(str(part) for part in (
        f"pid {owner.get('pid')}" if owner.get("pid") else None,
        f"on {owner.get('host')}" if owner.get("host") else None,
        owner.get("url")) if part)
    return (f"a notebench server owns the workspace {workspace.path}"
            + (f" ({where})" if where else ""))
