"""The assets capability: roots, registry, streaming and resumable uploads, trash."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..capability import Capability
from .handlers import asset_routes
from .registry import ASSETS_TOPIC, NotebenchAssetRegistry
from .schema import MIGRATIONS

if TYPE_CHECKING:
    from ..app import NotebenchApp
    from ..services import Services

__all__ = ["CAPABILITY", "NotebenchAssetRegistry"]


def _create(app: NotebenchApp, services: Services) -> NotebenchAssetRegistry:
    return NotebenchAssetRegistry(services, parent=app)


CAPABILITY = Capability(
    name="assets", create=_create, routes=asset_routes, schema=MIGRATIONS,
    topics=(ASSETS_TOPIC,), configurables=lambda: [NotebenchAssetRegistry],
)
