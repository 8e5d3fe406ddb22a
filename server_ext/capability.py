"""What a capability (hardware, assets, jobs, monitoring) gives the extension.

Each capability package exposes one ``CAPABILITY``: its schema migrations, its topics,
a factory for its service, its routes, and the hooks the app calls for every capability
(routes outside ``notebench/api/``, variables for kernels, what keeps the server busy,
configurable classes). Its routes and topics belong to its area (``notebench:<name>``):
streaming one of its topics needs ``read`` there. The app wires them in ``CAPABILITIES``
order, so a later capability may use an earlier one's service (through ``seams``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module, resources
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from .app import NotebenchApp
    from .events.bus import TopicRegistry
    from .services import Services

#: capability packages under notebench.server, in wiring order
CAPABILITIES = ("hardware", "assets", "jobs", "monitoring")


def _none() -> list[Any]:
    return []


def _no_routes(service: Any) -> list[tuple[str, type]]:
    return []


def _no_environment(service: Any) -> dict[str, str]:
    return {}


def _no_activity(service: Any) -> list[dict[str, Any]] | None:
    return None


def _no_problems(service: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class Capability:
    """A capability's parts."""

    name: str
    create: Callable[[NotebenchApp, Services], Any]
    routes: Callable[[], list[tuple[str, type]]]
    schema: list[str] = field(default_factory=list)
    topics: tuple[str, ...] = ()
    topic_patterns: tuple[str, ...] = ()
    #: routes outside ``notebench/api/`` (patterns relative to the server's base URL), from
    #: the service (an option may leave a route out)
    app_routes: Callable[[Any], list[tuple[str, type]]] = _no_routes
    #: variables for the kernels and jobs the server starts, from the service
    environment: Callable[[Any], dict[str, str]] = _no_environment
    #: what keeps the server busy (its ``/api/status`` activity), from the service
    activity: Callable[[Any], list[dict[str, Any]] | None] = _no_activity
    #: the configurable classes (``c.<Class>.<option>``) listed by ``--help-all``
    configurables: Callable[[], list[type]] = _none
    #: what stops the capability from working now (``info``'s ``problems``), from the service
    problems: Callable[[Any], list[str]] = _no_problems

    @property
    def area(self) -> str:
        """The area of the capability's routes and topics (``notebench:<area>``)."""
        return self.name

    def register_topics(self, registry: TopicRegistry) -> None:
        """Make the capability's topics known, each readable with ``read`` on its area."""
        for topic in self.topics:
            registry.add(topic, (self.area,))
        for pattern in self.topic_patterns:
            registry.add_pattern(pattern, (self.area,))


def load_capabilities() -> list[Capability]:
    """The capabilities this install has (a package without ``CAPABILITY`` is skipped)."""
    found = []
    for name in CAPABILITIES:
        try:
            module = import_module(f"notebench.server.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"notebench.server.{name}":
                continue
            raise
        capability = getattr(module, "CAPABILITY", None)
        if capability is not None:
            found.append(capability)
    return found


def configurable_classes() -> list[type]:
    """Every installed capability's configurable classes, in capability order."""
    return [cls for capability in load_capabilities() for cls in capability.configurables()]


def openapi_document(capabilities: list[Capability], base_url: str = "/") -> bytes:
    """The core document with each capability's ``openapi.json`` fragment merged in, its
    ``servers`` under the server's ``base_url`` (``/user/alice/notebench/api`` under
    JupyterHub's ``/user/alice/``)."""
    package = resources.files("notebench.server")
    document = orjson.loads((package / "openapi.json").read_bytes())
    document["servers"] = [{**server, "url": base_url.rstrip("/") + server["url"]}
                           for server in document["servers"]]
    for capability in capabilities:
        fragment_file = package / capability.name / "openapi.json"
        if not fragment_file.is_file():
            continue
        fragment = orjson.loads(fragment_file.read_bytes())
        document["paths"].update(fragment.get("paths", {}))
        for section, entries in fragment.get("components", {}).items():
            document["components"].setdefault(section, {}).update(entries)
    return orjson.dumps(document)
