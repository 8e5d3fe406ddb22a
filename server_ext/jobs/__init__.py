"""The jobs capability: papermill-run training notebooks with live metrics and control.

The service, the handlers and their imports load only when the server wires the
capability: the runner process (``python -m notebench.server.jobs.runner``) imports this
package too and must start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import JOB_TOPIC_PATTERN, JOBS_TOPIC

from ..capability import Capability
from .schema import MIGRATIONS

if TYPE_CHECKING:
    from ..app import NotebenchApp
    from ..services import Services


def _create(app: NotebenchApp, services: Services) -> Any:
    from .service import NotebenchJobService

    return NotebenchJobService(parent=app, services=services)


def _routes() -> list[tuple[str, type]]:
    from .handlers import jobs_routes

    return jobs_routes()


CAPABILITY = Capability(
    name="jobs", create=_create, routes=_routes, schema=MIGRATIONS,
    topics=(JOBS_TOPIC,), topic_patterns=(JOB_TOPIC_PATTERN,),
)
