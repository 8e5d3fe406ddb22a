"""What each capability offers the others: the only way one reaches another.

Capabilities are wired in order (hardware, assets, jobs, monitoring). A later one may
call an earlier one through these views; an earlier one never calls a later one: it
offers a registration point the later one subscribes to when it is created
(``JobsView.add_usage_source``). A capability's own handlers use its full service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

#: a job's resource use now (the job's ``usage`` field), or None when not known
UsageSource = Callable[[str], "dict[str, Any] | None"]


class HardwareView(Protocol):
    """The hardware capability, to jobs (``auto`` parameters)."""

    async def profile(self, kernel_name: str | None = None) -> dict[str, Any]: ...


class AssetRoot(Protocol):
    """One asset root (a category)."""

    @property
    def path(self) -> Path: ...


class AssetsView(Protocol):
    """The assets capability, to jobs (asset parameters, outputs) and monitoring (roots)."""

    @property
    def categories(self) -> Mapping[str, AssetRoot]: ...

    async def resolve(self, ref: str, category: str | None = None) -> dict[str, Any]: ...

    async def register_path(self, path: Path, *, category: str, source: str = ...,
                            job_id: str | None = ..., metadata: dict[str, Any] | None = ...,
                            tags: list[str] | None = ...) -> dict[str, Any]: ...

    async def link_into(self, src: Path, category: str, name: str, *, source: str,
                        job_id: str | None, metadata: dict[str, Any] | None = ...,
                        tags: list[str] | None = ...) -> dict[str, Any]: ...

    async def reconcile(self, category: str) -> bool: ...

    async def list_assets(self, category: str, args: dict[str, str | None]
                          ) -> dict[str, Any]: ...

    async def delete(self, asset_id: str) -> dict[str, Any]: ...


class JobsView(Protocol):
    """The jobs capability, to monitoring (per-job resources, training alerts, health)."""

    @property
    def stall_minutes(self) -> float: ...

    def health(self) -> dict[str, Any]: ...

    def active_job_ids(self) -> Iterable[str]: ...

    def pids(self, job_id: str) -> Iterable[int]: ...

    def seconds_since_metric(self, job_id: str) -> float | None: ...

    async def get_job(self, job_id: str) -> dict[str, Any]: ...

    def add_usage_source(self, source: UsageSource) -> None: ...


class MonitoringView(Protocol):
    """The monitoring capability: the last one, so nothing calls it; what its own
    handlers and the app's hooks need is its service."""

    def job_usage(self, job_id: str) -> dict[str, Any] | None: ...
