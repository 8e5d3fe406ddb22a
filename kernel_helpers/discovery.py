"""Finding the Jupyter server that runs notebench, and the token to send it.

Explicit arguments first, then the environment the extension gives its kernels, then
Jupyter's runtime file of an ancestor process; ``jupyter_core`` and ``psutil`` are
imported only when that last step needs them. A token found on the way is sent only to
the server it belongs to; a job (started by the server) gets no token but its own.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ._jobdir import JOB_DIR_ENV

ENV_URL = "NOTEBENCH_SERVER_URL"
ENV_TOKEN = "NOTEBENCH_SERVER_TOKEN"
ENV_WORKSPACE = "NOTEBENCH_WORKSPACE"
ENV_HUB_TOKEN = "JUPYTERHUB_API_TOKEN"
ANCESTOR_LEVELS = 6  # how many ancestor processes to look for a runtime file

_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]"}
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", ""}
_DEFAULT_PORTS = {"http": 80, "https": 443}


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


def _server_key(url: str) -> tuple[str, str, int | None, str]:
    """(scheme, host, port, base path) of a server URL; every local host name is one."""
    parts = urllib.parse.urlsplit(_normalize_url(url))
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if host in _LOCAL_HOSTS:
        host = "localhost"
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return scheme, host, port, urllib.parse.unquote(parts.path)


def same_server(a: str, b: str) -> bool:
    """Whether two URLs name the same server: scheme, host, port and base path."""
    return _server_key(a) == _server_key(b)


def in_job(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process runs a job the server started (its job directory is set)."""
    return bool(environ.get(JOB_DIR_ENV))


@dataclass
class _Home:
    """The server this process belongs to, and every URL its token was issued for."""

    info: ServerInfo
    urls: tuple[str, ...]

    def owns(self, url: str) -> bool:
        return any(same_server(url, own) for own in self.urls)


def _runtime_file_server(
    environ: Mapping[str, str],
    runtime_dir: str | os.PathLike[str] | None,
    ppid: int | None,
    tried: list[str],
) -> _Home | None:
    """The server of the ``jpserver-<pid>.json`` of the parent process or an ancestor."""
    if runtime_dir is None:
        try:
            from jupyter_core.paths import jupyter_runtime_dir

            runtime_dir = jupyter_runtime_dir()
        except ImportError:
            runtime_dir = None
    if runtime_dir is None:
        tried.append("jupyter_core not installed: no runtime dir")
        return None
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
        tok = str(info.get("token") or "") or (environ.get(ENV_HUB_TOKEN) or "")
        root = info.get("root_dir")
        server = ServerInfo(found, tok, "runtime-file", str(root) if root else None,
                            environ.get(ENV_WORKSPACE) or None)
        own = [found] + ([str(info["url"])] if info.get("url") else [])
        return _Home(server, tuple(own))
    tried.append(f"no jpserver-<pid>.json in {runtime_dir} for ancestor pids {pids}")
    return None


def _home_server(
    environ: Mapping[str, str],
    runtime_dir: str | os.PathLike[str] | None,
    ppid: int | None,
    tried: list[str],
) -> _Home | None:
    """The server this process belongs to: the environment's, else the runtime file's.

    ``NOTEBENCH_SERVER_URL`` names it; its token is ``NOTEBENCH_SERVER_TOKEN`` when set
    (e.g. a Voila viewer's), else ``JUPYTERHUB_API_TOKEN``, else (outside a job) the one
    in the same server's runtime file. Inside a job the runtime file (which holds the
    server owner's token) is never read.
    """
    workspace = environ.get(ENV_WORKSPACE) or None
    env_url = environ.get(ENV_URL)
    job = in_job(environ)
    if env_url:
        url = _normalize_url(env_url)
        token = environ.get(ENV_TOKEN) or environ.get(ENV_HUB_TOKEN) or ""
        root, own = None, (url,)
        if not token and not job:
            found = _runtime_file_server(environ, runtime_dir, ppid, [])
            if found is not None and found.owns(url):
                token, root, own = found.info.token, found.info.root_dir, (url, *found.urls)
        return _Home(ServerInfo(url, token, "environment", root, workspace), own)
    tried.append(f"${ENV_URL} not set")
    if job:
        tried.append("inside a job the server's runtime file is not read")
        return None
    return _runtime_file_server(environ, runtime_dir, ppid, tried)


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
    process or one of its ancestors. A discovered token is only ever used for the server
    it belongs to: an explicit ``url`` of another server gets no token unless ``token``
    is given. Inside a job (``NOTEBENCH_JOB_DIR`` set) there is no token but the one
    given (``token=`` or ``NOTEBENCH_SERVER_TOKEN``) and no runtime file is read.
    Raises ``ServerNotFound``.
    """
    workspace = environ.get(ENV_WORKSPACE) or None
    if url:
        target = _normalize_url(url)
        if token is None:
            home = _home_server(environ, runtime_dir, ppid, [])
            token = home.info.token if home is not None and home.owns(target) else ""
        return ServerInfo(target, token, "explicit", None, workspace)

    tried = ["no explicit url"]
    home = _home_server(environ, runtime_dir, ppid, tried)
    if home is not None and token is not None:
        home.info.token = token
        return home.info
    if home is not None and (home.info.token or not in_job(environ)):
        return home.info
    if in_job(environ):
        where = "" if home is not None else " (" + "; ".join(tried) + ")"
        raise ServerNotFound(
            "Inside a job notebench has no token for the server: the server's own token is "
            "not given to jobs" + where + ". Act with your own rights: notebench.Client("
            f"url, token=...) (the server's URL is ${ENV_URL}), or set {ENV_TOKEN} in the "
            "job to your token; token=\"\" for a server without authentication.")
    raise ServerNotFound(
        "No notebench server found (" + "; ".join(tried) + "). Pass url= and token=, "
        f"or set {ENV_URL} and {ENV_TOKEN}."
    )
