"""Reconciling the registry with the disk, and hashing found files in the background.

``Scanner.refresh(category)`` is what a listing awaits: it stats the folders it knows
and lists only those whose mtime changed (adding or removing a file changes its
folder's mtime), so with nothing changed it costs one ``stat`` per folder, whatever the
number of files. A folder whose mtime is within ``RACY_NS`` of its listing is listed
again next time (a file created in the same clock tick would not change it). A deep
scan (periodic) lists every folder and so also sees files rewritten in place.

New files are registered at once with ``sha256`` NULL (``source: scan``); the
``Hasher`` task hashes them later, in a thread, a batch at a time, and files still being
written (modified within ``SETTLE_S``) wait for a later pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import ApiError
from .hashing import read_fd
from .paths import RESERVED, check_name, open_beneath, real_root
from .ports import ScanChanges
from .schema import insert_asset, own_link
from .sniff import describe

if TYPE_CHECKING:
    from .ports import AssetCore

log = logging.getLogger("notebench.assets")

RACY_NS = 2_000_000_000
SETTLE_S = 2.0
HASH_BATCH = 200


class Scanner:
    """Keeps each category's rows in step with its folder."""

    def __init__(self, registry: AssetCore) -> None:
        self.registry = registry
        self.store = registry.store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notebench-scan")
        # category -> {relative folder: trusted mtime_ns, or None to list it again}
        self._dirs: dict[str, dict[str, int | None]] = {}

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def drop(self, category: str, rel_dir: str) -> None:
        """Stop descending into ``rel_dir`` (it became a folder asset, or left)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._drop, category, rel_dir)

    def _drop(self, category: str, rel_dir: str) -> None:
        known = self._dirs.get(category)
        if known is None:
            return
        prefix = rel_dir + "/"
        for folder in list(known):
            if folder == rel_dir or folder.startswith(prefix):
                del known[folder]
        parent = rel_dir.rpartition("/")[0]
        if parent in known:
            known[parent] = None

    async def refresh(self, category: str, *, deep: bool = False) -> ScanChanges:
        """List the folders that changed (all of them when ``deep``) and record the changes."""
        loop = asyncio.get_running_loop()
        changes = await loop.run_in_executor(self._executor, self._refresh, category, deep)
        if changes:
            self.registry.changed_on_disk(category, changes)
        return changes

    async def deep_scan(self, category: str) -> ScanChanges:
        """Every folder, one executor job each (listings refresh in between)."""
        loop = asyncio.get_running_loop()
        total = ScanChanges()
        total.merge(await self.refresh(category))
        for folder in list(self._dirs.get(category, {})):
            changes = await loop.run_in_executor(self._executor, self._scan_one, category,
                                                 folder)
            total.merge(changes)
            if changes:
                self.registry.changed_on_disk(category, changes)
        return total

    # -- thread side -------------------------------------------------------------------------

    def _refresh(self, category: str, deep: bool) -> ScanChanges:
        known = self._dirs.setdefault(category, {"": None})
        root = real_root(self.registry.category(category).path)
        todo: list[str] = []
        total = ScanChanges()
        for folder, trusted in list(known.items()):
            if folder not in known:
                continue  # dropped with a vanished parent
            try:
                st = os.lstat(root / folder if folder else root)
            except OSError:
                st = None
            if st is None or not stat.S_ISDIR(st.st_mode):
                total.merge(self._vanished(category, folder))
                continue
            if deep or trusted is None or st.st_mtime_ns != trusted:
                todo.append(folder)
        while todo:
            folder = todo.pop()
            changes, subdirs = self._scan_dir(category, root, folder)
            total.merge(changes)
            for sub in subdirs:
                if sub not in known:
                    known[sub] = None
                    todo.append(sub)
        return total

    def _scan_one(self, category: str, folder: str) -> ScanChanges:
        known = self._dirs.get(category, {})
        if folder not in known:
            return ScanChanges()
        root = real_root(self.registry.category(category).path)
        path = root / folder if folder else root
        if not os.path.isdir(path) or os.path.islink(path):
            return self._vanished(category, folder)
        changes, subdirs = self._scan_dir(category, root, folder)
        for sub in subdirs:
            known.setdefault(sub, None)
        return changes

    def _vanished(self, category: str, folder: str) -> ScanChanges:
        known = self._dirs.get(category, {})
        prefix = folder + "/" if folder else ""
        for sub in list(known):
            if sub == folder or sub.startswith(prefix):
                del known[sub]
        if not folder:
            known[""] = None

        def mark(conn: Any) -> int:
            cursor = conn.execute(
                "UPDATE assets SET state = 'missing', updated = ? WHERE category = ? AND "
                "state = 'present' AND (dir = ? OR dir LIKE ? ESCAPE '\\')",
                (time.time(), category, folder, _like_prefix(prefix)),
            )
            return cursor.rowcount

        return ScanChanges(missing=self.store.submit(mark).result())

    def _scan_dir(self, category: str, root: Any, folder: str) -> tuple[ScanChanges, list[str]]:
        path = root / folder if folder else root
        allow_hidden = self.registry.hidden_allowed
        try:
            listed_mtime = os.lstat(path).st_mtime_ns
            entries = list(os.scandir(path))
        except OSError:
            return self._vanished(category, folder), []
        files: dict[str, os.stat_result] = {}
        subdirs: dict[str, os.stat_result] = {}
        for entry in entries:
            name = entry.name
            if name in RESERVED or (name.startswith(".") and not allow_hidden):
                continue
            try:
                check_name(name, allow_hidden=allow_hidden)
                st = entry.stat(follow_symlinks=False)
            except (ApiError, OSError):
                continue  # names the API could not serve safely, and vanished entries
            if stat.S_ISREG(st.st_mode):
                files[name] = st
            elif stat.S_ISDIR(st.st_mode):
                subdirs[name] = st
        rows = self.store.read_sync(lambda conn: conn.execute(
            "SELECT id, name, kind, size, mtime_ns, state FROM assets "
            "WHERE category = ? AND dir = ? AND state != 'trashed'", (category, folder)
        ).fetchall())
        by_name = {r["name"]: r for r in rows}
        prefix = folder + "/" if folder else ""
        now = time.time()
        inserts: list[dict[str, Any]] = []
        updates: list[tuple[Any, ...]] = []
        missing: list[str] = []
        descend: list[str] = []
        for name, st in files.items():
            row = by_name.get(name)
            if row is not None and row["kind"] == "file":
                if row["state"] != "present" or row["size"] != st.st_size or \
                        row["mtime_ns"] != st.st_mtime_ns:
                    same = row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns
                    updates.append((st.st_size, st.st_mtime_ns, same, now, row["id"]))
                continue
            if row is not None:
                missing.append(row["id"])  # was a folder asset, is a file now
            if st.st_nlink > 1 and not self.store.read_sync(
                    lambda conn, s=st: own_link(conn, s.st_dev, s.st_ino, s.st_nlink)):
                continue  # hard links pass every path check: never picked up from disk
            inserts.append(_found_row(category, prefix + name, folder, name, st, now))
        for name in subdirs:
            row = by_name.get(name)
            if row is not None and row["kind"] == "dir":
                if row["state"] != "present":
                    updates.append((row["size"], row["mtime_ns"], True, now, row["id"]))
                continue
            if row is not None:
                missing.append(row["id"])
            descend.append(prefix + name)
        for name, row in by_name.items():
            if name not in files and name not in subdirs and row["state"] == "present":
                missing.append(row["id"])
        changes = ScanChanges(added=len(inserts), changed=len(updates), missing=len(missing))
        if changes:
            self.store.submit(lambda conn: _apply(conn, inserts, updates, missing, now)).result()
        known = self._dirs.setdefault(category, {})
        racy = time.time_ns() - listed_mtime < RACY_NS
        known[folder] = None if racy else listed_mtime
        return changes, descend


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _found_row(category: str, rel: str, folder: str, name: str, st: os.stat_result,
               now: float) -> dict[str, Any]:
    return {"id": secrets.token_hex(8), "category": category, "rel_path": rel, "dir": folder,
            "name": name, "kind": "file", "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "sha256": None, "format": None, "media_type": None, "state": "present",
            "source": "scan", "job_id": None, "tags": "[]", "metadata": "{}", "manifest": None,
            "created": now, "updated": now}


def _apply(conn: Any, inserts: list[dict[str, Any]], updates: list[tuple[Any, ...]],
           missing: list[str], now: float) -> None:
    for values in inserts:
        conn.execute("SAVEPOINT found")
        try:
            insert_asset(conn, values)
        except Exception:  # registered meanwhile by an upload: theirs wins
            conn.execute("ROLLBACK TO found")
        conn.execute("RELEASE found")
    # a row trashed since the scan read it (an overwrite moved the old version away) stays
    # trashed: the file the scan saw is its successor, registered by the upload
    for size, mtime_ns, same, updated, asset_id in updates:
        if same:
            conn.execute("UPDATE assets SET state = 'present', updated = ? WHERE id = ? "
                         "AND state != 'trashed'", (updated, asset_id))
        else:
            conn.execute("UPDATE assets SET state = 'present', size = ?, mtime_ns = ?, "
                         "sha256 = NULL, updated = ? WHERE id = ? AND state != 'trashed'",
                         (size, mtime_ns, updated, asset_id))
    conn.executemany("UPDATE assets SET state = 'missing', updated = ? WHERE id = ? AND "
                     "state = 'present'", [(now, asset_id) for asset_id in missing])


class Hasher:
    """Background task: hash found and changed files, a batch at a time, in a thread.

    Each pass walks the unhashed rows in rowid order; files modified within ``SETTLE_S``
    (still being written) are left for a pass ``SETTLE_S`` later.
    """

    def __init__(self, registry: AssetCore) -> None:
        self.registry = registry
        self.store = registry.store
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notebench-hash")

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True, cancel_futures=True)

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                again = await self._pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background hashing failed")
                again = True
            if again:
                asyncio.get_running_loop().call_later(SETTLE_S, self._wake.set)

    async def _pass(self) -> bool:
        """Hash every unhashed file once; True when some must be tried again later."""
        loop = asyncio.get_running_loop()
        cursor = 0
        again = False
        while True:
            rows = await self.store.read(lambda conn, c=cursor: conn.execute(
                "SELECT rowid, id, category, rel_path FROM assets WHERE kind = 'file' AND "
                "sha256 IS NULL AND state = 'present' AND rowid > ? ORDER BY rowid LIMIT ?",
                (c, HASH_BATCH)).fetchall())
            if not rows:
                return again
            cursor = rows[-1]["rowid"]
            results = await loop.run_in_executor(self._executor, self._hash_rows, rows)
            again = again or any(r["outcome"] == "deferred" for r in results)
            await self.registry.write(lambda conn, r=results: _store_hashes(conn, r))
            done = [r for r in results if r["outcome"] == "hashed"]
            if done:
                self.registry.hashed(done)

    def _hash_rows(self, rows: list[Any]) -> list[dict[str, Any]]:
        return [self._hash_row(row) for row in rows]

    def _hash_row(self, row: Any) -> dict[str, Any]:
        result: dict[str, Any] = {"id": row["id"], "category": row["category"]}
        try:
            category = self.registry.category(row["category"])
            fd = open_beneath(category.path, PurePosixPath(row["rel_path"]))
            try:
                facts = read_fd(fd, digest=False)
                if time.time() - facts.mtime_ns / 1e9 < SETTLE_S:
                    result["outcome"] = "deferred"  # still being written
                    return result
                if facts.nlink > 1 and not self.store.read_sync(
                        lambda conn: own_link(conn, facts.dev, facts.ino, facts.nlink)):
                    result["outcome"] = "missing"
                    return result
                os.lseek(fd, 0, os.SEEK_SET)
                facts = read_fd(fd)
            finally:
                os.close(fd)
        except ApiError as exc:
            result["outcome"] = "deferred" if exc.status == 409 else "missing"
            return result
        except OSError:
            result["outcome"] = "missing"
            return result
        sniffed = describe(row["rel_path"], facts.head, facts.size <= len(facts.head))
        result.update(outcome="hashed", sha256=facts.sha256, size=facts.size,
                      mtime_ns=facts.mtime_ns, format=sniffed.format,
                      media_type=sniffed.media_type, meta=sniffed.metadata())
        return result


def _store_hashes(conn: Any, results: list[dict[str, Any]]) -> None:
    now = time.time()
    for result in results:
        if result["outcome"] == "missing":
            conn.execute("UPDATE assets SET state = 'missing', updated = ? WHERE id = ?",
                         (now, result["id"]))
        elif result["outcome"] == "hashed":
            row = conn.execute("SELECT metadata FROM assets WHERE id = ?",
                               (result["id"],)).fetchone()
            if row is None:
                continue
            metadata = {**orjson.loads(row["metadata"]), **result["meta"]}
            conn.execute(
                "UPDATE assets SET sha256 = ?, size = ?, mtime_ns = ?, format = ?, "
                "media_type = ?, metadata = ?, updated = ? WHERE id = ? AND sha256 IS NULL",
                (result["sha256"], result["size"], result["mtime_ns"], result["format"],
                 result["media_type"], orjson.dumps(metadata).decode(), now, result["id"]),
            )

