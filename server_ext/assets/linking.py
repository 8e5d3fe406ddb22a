"""``Linker``: hard-linking job outputs into a root (``link_into``) and copying from the
configured import folders (``POST assets/import``)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import secrets
import shutil
import stat
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..errors import ApiError, bad_request
from . import schema
from .fields import check_metadata, check_tags
from .importer import copy_file, copy_tree
from .paths import (
    check_name,
    check_relpath,
    hard_link_refused,
    locate,
    path_not_found,
    real_root,
    relative_to_root,
)
from .sniff import detect, extension_allowed, unsupported_type
from .uploads import IMPORT_PREFIX

if TYPE_CHECKING:
    from .ports import AssetCore
    from .roots import Category


class Linker:
    """Brings files from elsewhere on the disk into a root (``registry.linker``)."""

    def __init__(self, core: AssetCore) -> None:
        self.core = core

    # -- linking (jobs) --------------------------------------------------------------------

    async def link_into(self, src: Path, category: str, name: str, *, source: str,
                        job_id: str | None, metadata: dict[str, Any] | None = None,
                        tags: list[str] | None = None) -> dict[str, Any]:
        """Hard-link (or copy across filesystems) ``src`` into a root under a fresh name."""
        core = self.core
        cat = core.category(category)
        base = check_name(name, allow_hidden=False)
        src_path = await asyncio.to_thread(self._checked_source, Path(src))
        metadata = check_metadata(metadata)
        tags = check_tags(tags)
        async with core.commit_lock:
            rel = await asyncio.to_thread(_free_name, cat, base)
            target = real_root(cat.path) / rel.name
            await asyncio.to_thread(self._link_tree, src_path, target)
        return await core.register(cat.name, rel.as_posix(), source=source, job_id=job_id,
                                   metadata=metadata, tags=tags)

    def _checked_source(self, src: Path) -> Path:
        """A source for ``link_into``: inside some root, no links, no foreign hard links."""
        for cat in self.core.categories.values():
            try:
                rel = relative_to_root(cat.path, src)
            except ApiError:
                continue
            rel = check_relpath(rel.as_posix(), allow_hidden=True)
            path = locate(cat.path, rel)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and not self.core.link_ok_sync(
                    st.st_dev, st.st_ino, st.st_nlink):
                raise hard_link_refused()
            return path
        raise path_not_found()

    def _link_tree(self, src: Path, target: Path) -> None:
        if src.is_dir():
            staging = target.with_name(f".{target.name}.linking")
            shutil.copytree(src, staging, symlinks=True, copy_function=self._link_one)
            os.rename(staging, target)
        else:
            self._link_one(src, target)

    def _link_one(self, src: str | Path, dst: str | Path) -> None:
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            shutil.copy2(src, dst, follow_symlinks=False)
            return
        st = os.lstat(dst)
        self.core.store.submit(lambda conn: schema.record_link(conn, st.st_dev, st.st_ino,
                                                               st.st_nlink)).result()

    # -- import from configured folders -------------------------------------------------------

    def import_source(self, raw: str, import_dir: int | None) -> tuple[Path, PurePosixPath]:
        """(import folder, relative path) of a requested import (thread); 403/404."""
        hidden = self.core.hidden_allowed
        folders = [Path(d).expanduser() for d in self.core.import_dirs]
        if not folders:
            raise ApiError(403, "import_disabled", "no import folders are configured "
                                                   "(c.NotebenchAssetRegistry.import_dirs)")
        if not isinstance(raw, str) or not raw:
            raise bad_request("path is required", "invalid_path")
        if raw.startswith("/"):
            for folder in folders:
                base = Path(os.path.abspath(folder))
                candidate = PurePosixPath(raw)
                if candidate.is_relative_to(base) and candidate != PurePosixPath(base):
                    rel = check_relpath(candidate.relative_to(base).as_posix(),
                                        allow_hidden=hidden)
                    return folder, rel
            raise path_not_found()
        if import_dir is not None and not 0 <= import_dir < len(folders):
            raise bad_request("import_dir is not a configured folder's index")
        return folders[import_dir or 0], check_relpath(raw, allow_hidden=hidden)

    async def import_asset(self, body: dict[str, Any]) -> dict[str, Any]:
        """Copy a file or folder from an import folder into a root, hashed and registered."""
        core = self.core
        cat = core.category(str(body.get("category", "")))
        import_dir = body.get("import_dir")
        if import_dir is not None and (not isinstance(import_dir, int)
                                       or isinstance(import_dir, bool)):
            raise bad_request("import_dir must be an integer index")
        base, rel = await asyncio.to_thread(self.import_source, body.get("path"), import_dir)
        name = check_name(body.get("name") or rel.name, allow_hidden=core.hidden_allowed)
        overwrite = bool(body.get("overwrite", False))
        tags = check_tags(body.get("tags"))
        metadata = check_metadata(body.get("metadata"))
        source = await asyncio.to_thread(locate, base, rel)
        st = await asyncio.to_thread(os.lstat, source)
        is_dir = stat.S_ISDIR(st.st_mode)
        if not is_dir and st.st_nlink > 1 and not await core.store.read(
                lambda conn: schema.own_link(conn, st.st_dev, st.st_ino, st.st_nlink)):
            raise hard_link_refused()
        if is_dir and not cat.accepts_directories:
            raise unsupported_type("this category does not take folders")
        if not is_dir and not extension_allowed(name, cat.types):
            raise unsupported_type("this kind of file is not allowed here")
        await core.check_free(cat, name, overwrite and not is_dir)
        staged = core.tmp_dir(cat) / f"{IMPORT_PREFIX}{secrets.token_hex(8)}"
        await asyncio.to_thread(staged.parent.mkdir, exist_ok=True)
        try:
            if is_dir:
                await asyncio.to_thread(copy_tree, source, staged, limit=cat.max_bytes,
                                        allow_hidden=core.hidden_allowed,
                                        link_ok=core.link_ok_sync)
                return await core.place_dir(cat, name, staged, source="import", tags=tags,
                                            metadata=metadata)
            copied = await asyncio.to_thread(copy_file, base, rel, staged, limit=cat.max_bytes,
                                             link_ok=core.link_ok_sync)
            sniffed = detect(name, copied.head, copied.size <= len(copied.head), cat.types)
            return await core.place_file(cat, name, staged, sha256=copied.sha256,
                                         size=copied.size, sniffed=sniffed,
                                         overwrite=overwrite, source="import", tags=tags,
                                         metadata=metadata)
        finally:
            await asyncio.to_thread(_remove_staged, staged)


def _free_name(cat: Category, name: str) -> PurePosixPath:
    root = real_root(cat.path)
    stem, dot, suffix = name.partition(".")
    candidate = name
    counter = 1
    while os.path.lexists(root / candidate):
        candidate = f"{stem}-{counter}{dot}{suffix}"
        counter += 1
    return PurePosixPath(check_name(candidate))


def _remove_staged(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
