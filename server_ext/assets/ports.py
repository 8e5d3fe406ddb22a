"""``AssetCore``: what the registry's parts (scanner, hasher, uploads, trash, placing,
linking) need of the registry, typed as a Protocol so they never import the registry;
``ScanChanges``, what the scanner reports through it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..services import Services
    from .roots import Category
    from .sniff import Sniffed


@dataclass
class ScanChanges:
    """Rows a scan added, changed and found missing."""

    added: int = 0
    changed: int = 0
    missing: int = 0

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.missing)

    def merge(self, other: ScanChanges) -> None:
        self.added += other.added
        self.changed += other.changed
        self.missing += other.missing


class AssetCore(Protocol):
    """The registry as its parts see it (``NotebenchAssetRegistry`` implements it)."""

    services: Services
    store: Any
    categories: dict[str, Category]
    commit_lock: asyncio.Lock
    import_dirs: list[str]
    progress_bytes: int
    upload_batch_bytes: int
    upload_expiry_hours: float
    trash_retention_days: float

    @property
    def hidden_allowed(self) -> bool: ...

    def category(self, name: str) -> Category: ...

    def tmp_dir(self, category: Category) -> Path: ...

    def public(self, row: Any, *, manifest: bool = False) -> dict[str, Any]: ...

    def publish(self, type_: str, data: dict[str, Any]) -> None: ...

    def changed_on_disk(self, category: str, changes: ScanChanges) -> None: ...

    def hashed(self, results: list[dict[str, Any]]) -> None: ...

    def write(self, fn: Callable[[Any], Any]) -> Coroutine[Any, Any, Any]: ...

    def link_ok_sync(self, dev: int, ino: int, nlink: int) -> bool: ...

    async def row(self, asset_id: str) -> Any: ...

    async def with_duplicates(self, asset: dict[str, Any]) -> dict[str, Any]: ...

    async def refuse_job_folder(self, path: Path) -> None: ...

    async def drop_folder(self, category: str, rel_dir: str) -> None: ...

    async def rescan(self, category: str) -> None: ...

    async def trash_row(self, cat: Category, row: Any) -> dict[str, Any]: ...

    async def register(self, category: str, rel_path: str, *, source: str = "register",
                       job_id: str | None = None, metadata: dict[str, Any] | None = None,
                       tags: list[str] | None = None) -> dict[str, Any]: ...

    async def check_free(self, cat: Category, name: str, overwrite: bool) -> None: ...

    async def place_file(self, cat: Category, name: str, staged: Path, *, sha256: str,
                         size: int, sniffed: Sniffed, overwrite: bool, source: str,
                         tags: list[str], metadata: dict[str, Any],
                         job_id: str | None = None) -> dict[str, Any]: ...

    async def place_dir(self, cat: Category, name: str, staged: Path, *, source: str,
                        tags: list[str], metadata: dict[str, Any],
                        job_id: str | None = None) -> dict[str, Any]: ...

