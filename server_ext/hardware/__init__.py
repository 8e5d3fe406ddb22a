"""The hardware capability: profile, torch facts, benchmark, recommendations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..capability import Capability
from .handlers import hardware_routes
from .service import HARDWARE_TOPIC, HardwareService

if TYPE_CHECKING:
    from ..app import NotebenchApp
    from ..services import Services


def _create(app: NotebenchApp, services: Services) -> HardwareService:
    return HardwareService(
        services.workspace, services.store, services.bus,
        probe_timeout=app.torch_probe_timeout, benchmark_nice=app.benchmark_nice,
        benchmark_disk_mb=app.benchmark_disk_mb, benchmark_quick=app.benchmark_quick,
        kernel_specs=app.serverapp.kernel_spec_manager if app.serverapp else None,
    )


CAPABILITY = Capability(
    name="hardware", create=_create, routes=hardware_routes, topics=(HARDWARE_TOPIC,)
)
