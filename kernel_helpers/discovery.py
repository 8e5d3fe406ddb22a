"""Finding the Jupyter server that runs notebench.

Explicit arguments first, then the environment the extension gives its kernels, then
Jupyter's runtime file of an ancestor process; ``jupyter_core`` and ``psutil`` are
imported only when that last step needs them.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ENV_URL = "NOTEBENCH_SERVER_URL"
ENV_TOKEN = "NOTEBENCH_SERVER_TOKEN"
ENV_WORKSPACE = "NOTEBENCH_WORKSPACE"
ENV_HUB_TOKEN = "JUPYTERHUB_API_TOKEN"
ANCESTOR_LEVELS = 6  # how many ancestor processes to look for a runtime file

_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}


class ServerNotFound(RuntimeError):
    """No notebench/Jupyter server could be found."""


@dataclass
class ServerInfo:
    """Where the server is and how to authenticate to it."""

    url: str  # base URL of the Jupyter server, with base_url and a trailing slash
    token: str
    source: str  # "explicit" | "environment" | "runtime-file"
    root_dir: str | None = None
    workspace: str | None = None  # notebench workspace folder, when known


def _normalize_url(url: str) -> str:
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    return url if url.endswith("/") else url + "/"


def _ancestor_pids(pid: int, levels: int) -> list[int]:
    """``pid`` followed by its parent, grandparent... (``levels`` pids at most)."""
    pids: list[int] = []
    while pid > 0 and len(pids) < levels and pid not in pids:  # pid 1: a container's server
        pids.append(pid)
        parent = _parent_pid(pid)
        if parent is None:
            break
        pid = parent
    return pids


def _parent_pid(pid: int) -> int | None:
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return psutil.Process(pid).ppid()
        except Exception:
            return None
    try:  # Linux without psutil
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _url_from_runtime_info(info: Mapping[str, Any]) -> str | None:
    """Connectable URL of a ``jpserver-<pid>.json`` (None for unix sockets)."""
    if info.get("sock"):
        return None
    url = info.get("url")
    if not url:
        port = info.get("port")
        if not port:
            return None
        scheme = "https" if info.get("secure") else "http"
        url = f"{scheme}://localhost:{port}{info.get('base_url') or '/'}"
    parts = urllib.parse.urlsplit(url)
    hostname = str(info.get("hostname", ""))
    if hostname in _WILDCARD_HOSTS:
        # Bound to every interface: the URL names the machine's hostname, which may
        # not resolve inside a container; loopback always works for a local process.
        loopback = "[::1]" if ":" in hostname else "127.0.0.1"
        parts = parts._replace(netloc=f"{loopback}:{parts.port or info.get('port')}")
    return _normalize_url(urllib.parse.urlunsplit(parts))


def _read_runtime_file(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def discover_server(
    url: str | None = None,
    token: str | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    runtime_dir: str | os.PathLike[str] | None = None,
    ppid: int | None = None,
) -> ServerInfo:
    """Find the server to talk to.

    Order: the explicit ``url``; ``NOTEBENCH_SERVER_URL`` (set by the extension in
    every kernel it starts); the ``jpserver-<pid>.json`` runtime file of the parent
    process or one of its ancestors (a papermill-run kernel's parent is papermill).
    Without a token, ``JUPYTERHUB_API_TOKEN`` is used. Raises ``ServerNotFound``.
    """
    hub_token = environ.get(ENV_HUB_TOKEN) or ""
    workspace = environ.get(ENV_WORKSPACE) or None
    if url:
        tok = token if token is not None else (environ.get(ENV_TOKEN) or hub_token)
        return ServerInfo(_normalize_url(url), tok, "explicit", None, workspace)

    tried = ["no explicit url"]
    env_url = environ.get(ENV_URL)
    if env_url:
        tok = token if token is not None else (environ.get(ENV_TOKEN) or hub_token)
        return ServerInfo(_normalize_url(env_url), tok, "environment", None, workspace)
    tried.append(f"${ENV_URL} not set")

    if runtime_dir is None:
        try:
            from jupyter_core.paths import jupyter_runtime_dir

            runtime_dir = jupyter_runtime_dir()
        except ImportError:
            runtime_dir = None
    if runtime_dir is None:
        tried.append("jupyter_core not installed: no runtime dir")
    else:
        start = os.getppid() if ppid is None else ppid
        pids = _ancestor_pids(start, ANCESTOR_LEVELS)
        for pid in pids:
            path = Path(runtime_dir) / f"jpserver-{pid}.json"
            info = _read_runtime_file(path)
            if info is None:
                continue
            found = _url_from_runtime_info(info)
            if found is None:
                tried.append(f"{path} serves a unix socket (unsupported)")
                continue
            tok = token if token is not None else (str(info.get("token") or "") or hub_token)
            root = info.get("root_dir")
            return ServerInfo(found, tok, "runtime-file", str(root) if root else None, workspace)
        tried.append(f"no jpserver-<pid>.json in {runtime_dir} for ancestor pids {pids}")
    raise ServerNotFound(
        "No notebench server found (" + "; ".join(tried) + "). Pass url= and token=, "
        f"or set {ENV_URL} and {ENV_TOKEN}."
    )



