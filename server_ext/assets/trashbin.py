"""``TrashBin``: moving assets to their root's trash and back, purging (records + files)."""

from __future__ import annotations

import asyncio
import time
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, not_found
from ..trash import retention_cutoff
from . import repository, schema
from .paths import name_exists
from .trash import move_to_trash, purge_slot, restore_from_trash, trash_usage

if TYPE_CHECKING:
    from .ports import AssetCore
    from .roots import Category


class TrashBin:
    """The trash side of the registry (``registry.trash``)."""

    def __init__(self, core: AssetCore) -> None:
        self.core = core

    async def delete(self, asset_id: str) -> dict[str, Any]:
        """Move an asset to its root's trash (a missing one is just forgotten)."""
        core = self.core
        row = await core.row(asset_id)
        if row["state"] == "trashed":
            raise not_found("the asset is already in the trash")
        cat = core.category(row["category"])
        async with core.commit_lock:
            if row["state"] == "missing":
                await core.write(lambda conn: schema.delete_asset(conn, asset_id))
                asset = {**core.public(row), "state": "removed"}
                core.publish("asset.removed", asset)
                return asset
            asset = await self.trash_row(cat, row)
        return asset

    async def trash_row(self, cat: Category, row: Any) -> dict[str, Any]:
        """Move a live row's file or folder to the trash (caller holds the commit lock)."""
        core = self.core
        asset = core.public(row)
        rel = PurePosixPath(row["rel_path"])
        await core.refuse_job_folder(cat.path / rel)
        try:
            trash_path = await asyncio.to_thread(move_to_trash, cat, rel, asset)
        except ApiError:
            await core.write(lambda conn: repository.set_missing(conn, row["id"]))
            raise
        now = time.time()
        updated = await core.write(lambda conn: repository.set_trashed(conn, row["id"], now,
                                                                       trash_path))
        if row["kind"] == "dir":
            await core.drop_folder(cat.name, row["rel_path"])
        asset = core.public(updated)
        core.publish("asset.trashed", asset)
        return asset

    async def list(self, category: str | None = None) -> dict[str, Any]:
        core = self.core
        if category is not None:
            core.category(category)
        rows = await core.store.read(lambda conn: repository.trashed(conn, category))
        items = [core.public(r) for r in rows if r["category"] in core.categories]
        usage = {}
        for name, cat in core.categories.items():
            if category is None or name == category:
                files, size = await asyncio.to_thread(trash_usage, cat)
                usage[name] = {"files": files, "bytes": size}
        return {"items": items, "usage": usage, "retention_days": core.trash_retention_days}

    async def restore(self, asset_id: str) -> dict[str, Any]:
        core = self.core
        row = await self._trashed_row(asset_id)
        cat = core.category(row["category"])
        rel = PurePosixPath(row["rel_path"])
        async with core.commit_lock:
            other = await core.store.read(lambda conn: schema.get_by_path(conn, cat.name,
                                                                          rel.as_posix()))
            if other is not None and other["state"] == "present":
                raise name_exists("an asset with this path exists; delete or rename it first")
            await asyncio.to_thread(restore_from_trash, cat, asset_id, rel)
            replaced = other["id"] if other is not None else None
            updated = await core.write(lambda conn: repository.set_restored(conn, asset_id,
                                                                            replaced))
        if row["kind"] == "dir":
            await core.drop_folder(cat.name, row["rel_path"])
        asset = core.public(updated)
        core.publish("asset.restored", asset)
        return await core.with_duplicates(asset)

    async def purge(self, asset_id: str) -> dict[str, Any]:
        core = self.core
        row = await self._trashed_row(asset_id)
        cat = core.category(row["category"])
        await asyncio.to_thread(purge_slot, cat, asset_id)
        await core.write(lambda conn: schema.delete_asset(conn, asset_id))
        asset = {**core.public(row), "state": "purged"}
        core.publish("asset.purged", {"id": asset_id, "category": cat.name})
        return asset

    async def purge_older(self, *, older_than_days: float | None = None,
                          category: str | None = None) -> dict[str, Any]:
        """Purge what was trashed before ``older_than_days`` (default: the retention)."""
        core = self.core
        days = core.trash_retention_days if older_than_days is None else older_than_days
        cutoff = retention_cutoff(days)
        if category is not None:
            core.category(category)
        rows = await core.store.read(lambda conn: repository.trashed_before(conn, cutoff,
                                                                            category))
        purged = []
        for row in rows:
            if row["category"] not in core.categories:
                continue
            await self.purge(row["id"])
            purged.append(row["id"])
        return {"purged": purged, "older_than_days": days}

    async def _trashed_row(self, asset_id: str) -> Any:
        row = await self.core.row(asset_id)
        if row["state"] != "trashed":
            raise not_found("the asset is not in the trash")
        self.core.category(row["category"])
        return row
