"""A Jupyter server extension for tests only: the ``notebench/api/_test/*`` routes tests and
benchmarks drive, and a controllable metric source in the monitoring service.

Test servers enable it next to notebench (``jpserver_extensions`` gets ``EXTENSION``); the
repository root must be importable (``tests.server_process`` puts it on ``PYTHONPATH``).
The routes use notebench's ``NotebenchHandler``: authenticated and authorized (area
``testing``) like every notebench route.
"""

from __future__ import annotations

import logging
from typing import Any

from jupyter_server.utils import url_path_join

from notebench.server.app import API_PREFIX

from .metrics import TestSource, TestSourceHook
from .routes import hook_routes

EXTENSION = "tests.server_hooks"

log = logging.getLogger("notebench.test")


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": EXTENSION}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Mount the routes, and give notebench's monitoring service the test source.

    Extensions load in name order, so notebench's services exist by now (their
    ``initialize_settings`` ran); monitoring checks its rules when it starts, later.
    """
    web_app = serverapp.web_app
    routes = list(hook_routes())
    services = web_app.settings.get("notebench_services")
    monitoring = getattr(services, "monitoring", None)
    if monitoring is not None:
        source = TestSource()
        monitoring.add_metric_source(source)
        routes.append((r"_test/monitoring/values", TestSourceHook, {"source": source}))
    else:
        log.warning("test hooks: notebench's monitoring is not loaded; no test metric source")
    prefix = url_path_join(serverapp.base_url, API_PREFIX)
    _add_ahead(web_app, [(url_path_join(prefix, pattern), handler, kwargs)
                         for pattern, handler, kwargs in routes])


def _add_ahead(web_app: Any, handlers: list[tuple[str, type, dict[str, Any]]]) -> None:
    """Add ``handlers`` ahead of the routes added before them.

    Tornado tries each ``add_handlers`` group in the order they were added, and notebench's
    ends with a catch-all 404 under ``notebench/api/``, which would answer ``_test/*``.
    """
    rules = web_app.default_router.rules
    before = list(rules)
    web_app.add_handlers(".*$", handlers)
    [added] = [rule for rule in rules if not any(rule is old for old in before)]
    rules.remove(added)
    rules.insert(0, added)
