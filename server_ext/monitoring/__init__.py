"""The monitoring capability: one sampler, live stream, per-job resources, alerts, logs,
health, stats and Prometheus exposition.

The service and its handlers load only when the server wires the capability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..capability import Capability
from .schema import MIGRATIONS

if TYPE_CHECKING:
    from ..app import NotebenchApp
    from ..services import Services

MONITORING_TOPIC = "monitoring"
ALERTS_TOPIC = "alerts"


def _create(app: NotebenchApp, services: Services) -> Any:
    from .service import NotebenchMonitoringService

    return NotebenchMonitoringService(parent=app, services=services)


def _routes() -> list[tuple[str, type]]:
    from .handlers import monitoring_routes

    return monitoring_routes()


CAPABILITY = Capability(
    name="monitoring", create=_create, routes=_routes, schema=MIGRATIONS,
    topics=(MONITORING_TOPIC, ALERTS_TOPIC),
)
