"""The jobs capability: papermill-run training notebooks with live metrics and control.

The service, the handlers and their imports load only when the server wires the
capability: the runner process (``python -m notebench.server.jobs.runner``) imports this
package too and must start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from notebench.jobprotocol import JOB_TOPIC_PATTERN, JOBS_TOPIC, RUNS_DIR_ENV

from ..capability import Capability
from .schema import MIGRATIONS

if TYPE_CHECKING:
    from ..app import NotebenchApp
    from ..services import Services
    from .service import NotebenchJobService


def _create(app: NotebenchApp, services: Services) -> Any:
    from .service import NotebenchJobService

    return NotebenchJobService(parent=app, services=services)


def _routes() -> list[tuple[str, type]]:
    from .handlers import jobs_routes

    return jobs_routes()


def _environment(service: NotebenchJobService) -> dict[str, str]:
    """Kernels find the interactive runs' folder (``notebench.run``) here."""
    return {RUNS_DIR_ENV: str(service.runs_dir)}


def _activity(service: NotebenchJobService) -> list[dict[str, Any]] | None:
    return service.current_activity()


def _problems(service: NotebenchJobService) -> list[str]:
    """The executor's: a Dask scheduler that cannot be reached, say."""
    problem = service.executor.problem()
    return [f"executor {service.executor.name}: {problem}"] if problem else []


def _configurables() -> list[type]:
    from .dask_executor import NotebenchDaskCluster
    from .service import NotebenchJobService

    return [NotebenchJobService, NotebenchDaskCluster]


CAPABILITY = Capability(
    name="jobs", create=_create, routes=_routes, schema=MIGRATIONS,
    topics=(JOBS_TOPIC,), topic_patterns=(JOB_TOPIC_PATTERN,),
    environment=_environment, activity=_activity, configurables=_configurables,
    problems=_problems,
)
