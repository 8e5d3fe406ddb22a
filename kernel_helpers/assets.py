"""The asset registry from a kernel: list, upload, download, register, open and load.

>>> import notebench
>>> notebench.assets.upload("data/train.csv", "datasets")        # streamed, resumable
>>> notebench.assets.list("datasets", name="train")
>>> f = notebench.assets.open(asset_id)                           # read-only file object
>>> state_dict = notebench.assets.load(asset_id)                  # safetensors or weights_only

Uploads stream from the local file (never read whole into memory) with its sha256, which
the server checks; files over ``resumable_bytes`` go through the resumable protocol and
survive dropped connections. Downloads stream to a temporary file, are checked against
the stored sha256 (the ETag) and resume a partial file. ``load`` never unpickles
arbitrary objects: safetensors first, ``numpy.load(allow_pickle=False)``, else
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import http.client
import os
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from .client import ApiError, Client

__all__ = ["delete", "download", "get", "list", "load", "open", "register", "restore",
           "roots", "update", "upload"]

CHUNK = 1 << 20
RESUMABLE_BYTES = 64 * 1024 * 1024
PART_BYTES = 64 * 1024 * 1024
CACHE_DIR = Path(os.environ.get("NOTEBENCH_ASSET_CACHE",
                                Path.home() / ".cache" / "notebench" / "assets"))


def _client(client: Client | None) -> Client:
    return client if client is not None else Client()


# --------------------------------------------------------------------------- reading


def roots(*, client: Client | None = None) -> dict[str, Any]:
    """The categories with their folders, accepted types, limits and usage."""
    return _client(client).get("assets/roots")


def get(asset_id: str, *, client: Client | None = None) -> dict[str, Any]:
    """One asset's record."""
    return _client(client).get(f"assets/{_quote(asset_id)}")


def list(category: str, *, name: str | None = None, type: str | None = None,
         tag: str | None = None, sort: str | None = None, state: str | None = None,
         limit: int | None = None, client: Client | None = None) -> builtins.list[dict]:
    """Assets of a category (every page, or at most ``limit``)."""
    api = _client(client)
    items: builtins.list[dict] = []
    cursor = None
    while True:
        page_size = min(1000, limit - len(items)) if limit else 1000
        params = {"name": name, "type": type, "tag": tag, "sort": sort, "state": state,
                  "limit": page_size, "cursor": cursor}
        page = api.get(f"assets/list/{_quote(category)}", params=params)
        items.extend(page["items"])
        cursor = page.get("next_cursor")
        if cursor is None or (limit and len(items) >= limit):
            return items


# ------------------------------------------------------------------------- writing


def update(asset_id: str, *, tags: builtins.list[str] | None = None,
           metadata: dict[str, Any] | None = None,
           client: Client | None = None) -> dict[str, Any]:
    """Replace tags and/or merge metadata (a None value removes a key)."""
    body: dict[str, Any] = {}
    if tags is not None:
        body["tags"] = tags
    if metadata is not None:
        body["metadata"] = metadata
    return _client(client).patch(f"assets/{_quote(asset_id)}", json=body)


def delete(asset_id: str, *, client: Client | None = None) -> dict[str, Any]:
    """Move an asset to its root's trash."""
    return _client(client).delete(f"assets/{_quote(asset_id)}")


def restore(asset_id: str, *, client: Client | None = None) -> dict[str, Any]:
    """Bring a trashed asset back (refused if its path is taken)."""
    return _client(client).post(f"assets/trash/{_quote(asset_id)}/restore", json={})


def register(path: str | os.PathLike[str], category: str | None = None, *,
             tags: builtins.list[str] | None = None, metadata: dict[str, Any] | None = None,
             client: Client | None = None) -> dict[str, Any]:
    """Register a file or folder that is already inside an asset root.

    ``path`` is absolute (the category is found from the roots) or relative to the
    root of ``category``.
    """
    api = _client(client)
    given = Path(path)
    if given.is_absolute():
        category, relative = _locate_in_roots(api, given, category)
    elif category is None:
        raise ValueError("a relative path needs its category")
    else:
        relative = given.as_posix()
    return api.post("assets/register", json={"category": category, "path": relative,
                                             "tags": tags or [], "metadata": metadata or {}})


def _locate_in_roots(api: Client, path: Path, category: str | None) -> tuple[str, str]:
    real = Path(os.path.realpath(path.parent)) / path.name
    for root in api.get("assets/roots")["roots"]:
        if category is not None and root["category"] != category:
            continue
        base = Path(os.path.realpath(root["path"]))
        if real.is_relative_to(base) and real != base:
            return root["category"], real.relative_to(base).as_posix()
    raise ValueError(f"{path} is not inside an asset root" +
                     (f" of {category}" if category else ""))


def upload(path: str | os.PathLike[str], category: str, *, name: str | None = None,
           overwrite: bool = False, tags: builtins.list[str] | None = None,
           metadata: dict[str, Any] | None = None, resumable: bool | None = None,
           part_bytes: int = PART_BYTES, retries: int = 5, upload_id: str | None = None,
           client: Client | None = None) -> dict[str, Any]:
    """Upload a local file, streamed, with its sha256 checked by the server.

    Files of ``RESUMABLE_BYTES`` or more (or with ``resumable=True``) use the resumable
    protocol: parts of ``part_bytes``, each retried from the offset the server reached
    after a dropped connection (``retries`` times in a row at most). ``upload_id``
    continues an upload started earlier (by another process, say).
    """
    api = _client(client)
    source = Path(path)
    size = source.stat().st_size
    digest = _sha256_file(source)
    target_name = name or source.name
    if resumable is None:
        resumable = size >= RESUMABLE_BYTES or upload_id is not None
    if not resumable:
        params = {"name": target_name, "overwrite": "true" if overwrite else None,
                  "tags": ",".join(tags) if tags else None}
        with builtins.open(source, "rb") as handle:
            asset = _send(api, "POST", f"assets/upload/{_quote(category)}", handle, 0, size,
                          params=params, headers={"X-Content-SHA256": digest})
        return update(asset["id"], metadata=metadata, client=api) if metadata else asset
    if upload_id is None:
        status = api.post("assets/uploads", json={
            "category": category, "name": target_name, "size": size, "sha256": digest,
            "overwrite": overwrite, "tags": tags or [], "metadata": metadata or {}})
        upload_id = status["id"]
    offset = api.get(f"assets/uploads/{upload_id}")["offset"]
    failures = 0
    with builtins.open(source, "rb") as handle:
        while offset < size:
            length = min(part_bytes, size - offset)
            try:
                status = _send(api, "PATCH", f"assets/uploads/{upload_id}", handle, offset,
                               length, headers={"Upload-Offset": str(offset)})
                offset = status["offset"]
                failures = 0
            except ApiError as exc:
                if exc.code not in ("offset_mismatch", "upload_busy"):
                    raise
                failures = _wait(failures, retries, exc)
                offset = api.get(f"assets/uploads/{upload_id}")["offset"]
            except (OSError, http.client.HTTPException) as exc:
                failures = _wait(failures, retries, exc)
                offset = api.get(f"assets/uploads/{upload_id}")["offset"]
    return api.post(f"assets/uploads/{upload_id}/complete", json={})


def _wait(failures: int, retries: int, error: Exception) -> int:
    failures += 1
    if failures > retries:
        raise ConnectionError(f"upload failed {failures} times in a row: {error}") from error
    time.sleep(min(0.25 * 2 ** (failures - 1), 10.0))
    return failures


class _Slice:
    """``length`` bytes of a file from ``offset``, read in large blocks by http.client."""

    def __init__(self, handle: IO[bytes], offset: int, length: int) -> None:
        self.handle = handle
        self.left = length
        handle.seek(offset)

    def read(self, _size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        block = self.handle.read(min(CHUNK, self.left))
        self.left -= len(block)
        return block


def _send(api: Client, method: str, path: str, handle: IO[bytes], offset: int, length: int,
          *, params: dict[str, Any] | None = None,
          headers: dict[str, str] | None = None) -> Any:
    """A request whose body streams from a file slice; the decoded JSON answer."""
    scheme, netloc, target = api._target(path, {k: v for k, v in (params or {}).items()
                                                if v is not None})
    conn = api._connect(scheme, netloc, api.timeout)
    try:
        all_headers = api._headers(method, {"Content-Type": "application/octet-stream",
                                            "Content-Length": str(length), **(headers or {})})
        conn.request(method, target, body=_Slice(handle, offset, length), headers=all_headers)
        response = conn.getresponse()
        raw = response.read()
        if response.status >= 400:
            raise ApiError.from_response(response.status, raw)
        return orjson.loads(raw) if raw else None
    finally:
        conn.close()


# ------------------------------------------------------------------------ download


def download(asset_id: str, dest: str | os.PathLike[str] | None = None, *,
             resume: bool = True, client: Client | None = None) -> Path:
    """Stream an asset to ``dest`` (a folder, a file path, or the current folder).

    A partial ``<dest>.part`` from an interrupted call is resumed with a Range request;
    the result is checked against the stored sha256 before it takes its name. A folder
    asset arrives as ``<name>.zip`` (built while it is sent: no resume, and each member's
    CRC is checked instead).
    """
    api = _client(client)
    asset = get(asset_id, client=api)
    folder = asset.get("kind") == "dir"
    target = Path(dest) if dest is not None else Path.cwd()
    if target.is_dir():
        target = target / (asset["name"] + (".zip" if folder else ""))
    partial = target.with_name(target.name + ".part")
    have = partial.stat().st_size if resume and not folder and partial.exists() else 0
    headers = {"Accept": "*/*"}
    if have:
        headers["Range"] = f"bytes={have}-"
        if asset.get("sha256"):
            headers["If-Range"] = f'"{asset["sha256"]}"'
    try:
        conn, response = api._open("GET", f"assets/download/{_quote(asset_id)}",
                                   headers=headers)
    except ApiError as exc:
        if exc.status != 416:
            raise
        partial.unlink(missing_ok=True)  # the partial file no longer fits: start over
        return download(asset_id, dest, resume=False, client=api)
    try:
        mode = "ab" if response.status == 206 else "wb"
        with builtins.open(partial, mode) as out:
            for block in _blocks(response):
                out.write(block)
        etag = (response.getheader("ETag") or "").strip('"')
    finally:
        conn.close()
    if (etag and _sha256_file(partial) != etag) or (folder and not _zip_intact(partial)):
        partial.unlink(missing_ok=True)
        check = "members' CRCs" if folder else "sha256"
        raise OSError(f"the download of {asset_id} does not match its {check}")
    os.replace(partial, target)
    return target


def _zip_intact(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except zipfile.BadZipFile:
        return False


def _blocks(response: http.client.HTTPResponse) -> Iterator[bytes]:
    while True:
        block = response.read(CHUNK)
        if not block:
            return
        yield block


# ------------------------------------------------------------------------ open, load


def local_path(asset_id: str, *, client: Client | None = None) -> Path:
    """A local path of the asset: its own file on this machine, else a cached download."""
    api = _client(client)
    asset = get(asset_id, client=api)
    path = Path(asset["path"])
    with contextlib.suppress(OSError):
        if path.is_file() and path.stat().st_size == asset["size"]:
            return path
    cached = CACHE_DIR / asset["id"] / asset["name"]
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        download(asset["id"], cached, client=api)
    return cached


def open(asset_id: str, mode: str = "rb", *, client: Client | None = None) -> IO[Any]:
    """Open an asset for reading (``"rb"`` or ``"r"``)."""
    if mode not in ("r", "rb", "rt"):
        raise ValueError("assets open read-only: use mode 'rb' or 'r'")
    return builtins.open(local_path(asset_id, client=client), mode)


def load(asset_id: str, *, map_location: str = "cpu", client: Client | None = None) -> Any:
    """Load tensors without unpickling arbitrary objects.

    safetensors files with ``safetensors``; ``.npy``/``.npz`` with numpy
    (``allow_pickle=False``); anything else with ``torch.load(weights_only=True)``.
    """
    api = _client(client)
    asset = get(asset_id, client=api)
    path = local_path(asset_id, client=api)
    if asset.get("format") == "safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=map_location)
    if asset.get("format") in ("npy", "npz"):
        import numpy

        return numpy.load(path, allow_pickle=False)
    import torch

    return torch.load(path, map_location=map_location, weights_only=True)


# ------------------------------------------------------------------------- helpers


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with builtins.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _quote(segment: str) -> str:
    return urllib.parse.quote(str(segment), safe="")
