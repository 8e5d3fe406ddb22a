"""The monitoring capability: one sampler, live stream, per-job resources, alerts, logs,
health, stats and Prometheus exposition.

The service and its handlers load only when the server wires the capability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..capability import Capability
from .schema import MIGRATIONS

if TYPE_CHECKING:
    from ..app import NotebenchApp
    from ..services import Services
    from .service import NotebenchMonitoringService

MONITORING_TOPIC = "monitoring"
ALERTS_TOPIC = "alerts"


def _create(app: NotebenchApp, services: Services) -> NotebenchMonitoringService:
    from .service import NotebenchMonitoringService

    return NotebenchMonitoringService(parent=app, services=services)


def _routes() -> list[tuple[str, type]]:
    from .handlers import monitoring_routes

    return monitoring_routes()


def _app_routes(service: NotebenchMonitoringService) -> list[tuple[str, type]]:
    """Outside ``notebench/api/``: Prometheus at ``notebench/metrics`` and, only with
    ``public_liveness``, the public liveness probe at ``notebench/livez``."""
    from .handlers import LivenessHandler, PrometheusHandler

    routes: list[tuple[str, type]] = [(r"notebench/metrics", PrometheusHandler)]
    if service.public_liveness:
        routes.append((r"notebench/livez", LivenessHandler))
    return routes


def _configurables() -> list[type]:
    from .service import NotebenchMonitoringService

    return [NotebenchMonitoringService]


CAPABILITY = Capability(
    name="monitoring", create=_create, routes=_routes, schema=MIGRATIONS,
    topics=(MONITORING_TOPIC, ALERTS_TOPIC), app_routes=_app_routes,
    configurables=_configurables,
)
