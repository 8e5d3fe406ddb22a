"""What handlers reach through ``self.services``: one object per capability."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import TYPE_CHECKING, Any

import notebench

from .events.bus import EventBus
from .hardware.service import HardwareService
from .logs import LogStore
from .store import Store
from .workspace import Workspace

if TYPE_CHECKING:
    from .app import NotebenchApp


@dataclass
class Services:
    """The extension's collaborators, built once per server."""

    config: NotebenchApp
    workspace: Workspace
    store: Store
    bus: EventBus
    logs: LogStore
    hardware: HardwareService
    started: float = field(default_factory=time.time)

    def info(self) -> dict[str, Any]:
        ws = self.workspace
        return {
            "version": notebench.__version__,
            "workspace": {
                "path": str(ws.path),
                "read_only": ws.read_only,
                "owner": ws.owner,
                "journal_mode": ws.journal_mode,
                "warnings": ws.warnings,
            },
            "started": self.started,
            "events": {
                "last_id": self.bus.last_id,
                "oldest_kept_id": self.bus.pruned_through + 1,
                "published": self.bus.published,
                "dropped_clients": self.bus.dropped_clients,
                "subscribers": self.bus.subscriber_count(),
                "topics": self.bus.topics.names(),
            },
        }

    def openapi_document(self) -> bytes:
        return self._openapi

    @cached_property
    def _openapi(self) -> bytes:
        return (resources.files("notebench.server") / "openapi.json").read_bytes()
