"""What handlers reach through ``self.services``: the core and one service per capability."""

from __future__ import annotations

import contextlib
import inspect
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import notebench

from .capability import Capability, openapi_document
from .credentials import SECRET_BYTES, JobTokens, ViewerTokens, load_secret
from .events.bus import EventBus
from .logs import LogStore
from .seams import AssetsView, HardwareView, JobsView, MonitoringView
from .store import Store
from .workspace import Workspace

if TYPE_CHECKING:
    from .app import NotebenchApp

log = logging.getLogger("notebench")


JOB_TOKEN_KEY = "job-token.key"


def job_tokens_of(workspace: Workspace) -> JobTokens:
    """Job tokens under the workspace's key (``.notebench/job-token.key``, created 0600 on
    first use), so they survive a restart. Blocking: called while the server is built. A
    server that only reads the workspace runs no jobs: it gets a key of its own."""
    if workspace.read_only:
        return JobTokens(secrets.token_bytes(SECRET_BYTES))
    return JobTokens(load_secret(workspace.state_dir / JOB_TOKEN_KEY))


@dataclass
class Services:
    """The extension's collaborators, built once per server.

    A capability's service may define ``async start()`` (after the loop runs) and
    ``async stop()``; both are called in capability order (stop in reverse). The
    capability fields are typed by what the others may use of them (``seams``).
    """

    config: NotebenchApp
    workspace: Workspace
    store: Store
    bus: EventBus
    logs: LogStore
    capabilities: list[Capability] = field(default_factory=list)
    hardware: HardwareView | None = None
    assets: AssetsView | None = None
    jobs: JobsView | None = None
    monitoring: MonitoringView | None = None
    started: float = field(default_factory=time.time)
    #: tokens minted for the viewers of Voila pages (``voila_hook``)
    viewer_tokens: ViewerTokens = field(default_factory=ViewerTokens)
    #: tokens of jobs that run elsewhere (``job_tokens_of``: the workspace's key)
    job_tokens: JobTokens = field(
        default_factory=lambda: JobTokens(secrets.token_bytes(SECRET_BYTES)))
    ready: bool = False  # seeded and every capability started: the workspace's files exist
    _openapi: dict[str, bytes] = field(default_factory=dict, init=False, repr=False)

    def add(self, capability: Capability) -> None:
        """Create a capability's service and register its topics."""
        capability.register_topics(self.bus.topics)
        setattr(self, capability.name, capability.create(self.config, self))
        self.capabilities.append(capability)

    def capability_services(self) -> list[Any]:
        return [service for _, service in self._wired()]

    def _wired(self) -> list[tuple[Capability, Any]]:
        return [(c, getattr(self, c.name)) for c in self.capabilities]

    def app_routes(self) -> list[tuple[str, type]]:
        """Every capability's routes outside ``notebench/api/``."""
        return [route for c, service in self._wired() for route in c.app_routes(service)]

    def kernel_environment(self) -> dict[str, str]:
        """The variables every capability sets for kernels (and jobs) the server starts."""
        env: dict[str, str] = {}
        for capability, service in self._wired():
            env.update(capability.environment(service))
        return env

    def current_activity(self) -> list[dict[str, Any]] | None:
        """What keeps the server busy, from every capability (None: nothing)."""
        found = [item for capability, service in self._wired()
                 for item in capability.activity(service) or []]
        return found or None

    def problems(self) -> list[str]:
        """What stops a capability from working now, each prefixed by its name."""
        return [f"{capability.name}: {problem}" for capability, service in self._wired()
                for problem in capability.problems(service)]

    async def start(self) -> None:
        for service in self.capability_services():
            start = getattr(service, "start", None)
            if start is not None:
                result = start()
                if inspect.isawaitable(result):
                    await result

    async def stop(self) -> None:
        for service in reversed(self.capability_services()):
            stop = getattr(service, "stop", None)
            if stop is None:
                continue
            try:
                result = stop()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                with contextlib.suppress(Exception):
                    log.exception("stopping %s failed", type(service).__name__)

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
            "capabilities": [c.name for c in self.capabilities],
            "problems": self.problems(),
            "started": self.started,
            "ready": self.ready,
            "events": {
                "last_id": self.bus.last_id,
                "oldest_kept_id": self.bus.pruned_through + 1,
                "published": self.bus.published,
                "dropped_clients": self.bus.dropped_clients,
                "subscribers": self.bus.subscriber_count(),
                "topics": self.bus.topics.names(),
            },
        }

    def openapi_document(self, base_url: str) -> bytes:
        """The served OpenAPI document, encoded once per ``base_url`` (fixed for a server's
        life)."""
        document = self._openapi.get(base_url)
        if document is None:
            document = self._openapi[base_url] = openapi_document(self.capabilities, base_url)
        return document
