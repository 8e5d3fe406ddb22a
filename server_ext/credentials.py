"""Credentials notebench alone knows: Voila viewers' tokens and jobs' tokens.

When Voila renders a page, notebench mints a token for the viewer and hands it to the
page's kernel (``voila_hook``); the kernel's ``notebench.Client`` sends it as
``Authorization: token nbv_...`` and ``NotebenchHandler.prepare`` resolves it back to the
viewer. Only digests of the tokens are kept, in memory: a restart forgets them all.

A job that runs on another machine sends ``Authorization: token nbj_<job id>_<mac>``: the
mac is an HMAC of the job id under a secret kept in the workspace (``load_secret``), so a
token survives a server restart, and it resolves only while its job is allowed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from notebench.jobprotocol import is_job_id, write_bytes_atomic

__all__ = ["JOB_PREFIX", "PREFIX", "JobTokens", "ViewerTokens", "job_token_from_header",
           "load_secret", "scope_refusal", "token_from_header"]

#: every minted token starts with this, so it is recognised before any lookup
PREFIX = "nbv_"
DEFAULT_LIMIT = 4096

#: a job's token starts with this
JOB_PREFIX = "nbj_"
SECRET_BYTES = 32
_MAC_CHARS = 43  # urlsafe base64 of a SHA-256 digest, without its padding


def _header_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(r"\s*(?:token|bearer)\s+(" + prefix + r"[A-Za-z0-9_-]+)\s*$",
                      re.IGNORECASE)


_HEADER = _header_pattern(PREFIX)
_JOB_HEADER = _header_pattern(JOB_PREFIX)


def token_from_header(value: str | None) -> str | None:
    """The minted token of an ``Authorization`` header value (None: not a minted token)."""
    match = _HEADER.match(value or "")
    return match.group(1) if match else None


def job_token_from_header(value: str | None) -> str | None:
    """The job token of an ``Authorization`` header value (None: not a job token)."""
    match = _JOB_HEADER.match(value or "")
    return match.group(1) if match else None


def scope_refusal(action: str, resource: str, *, actions: bool,
                  read_areas: Iterable[str]) -> str | None:
    """Why a viewer token may not ``action`` on ``resource``; None when its scope allows
    it (the authorizer still decides for the viewer). With ``actions`` the scope is the
    viewer's own rights; without, it reads the core and ``read_areas`` only."""
    if actions:
        return None
    if action != "read":
        return ("this Voila page is read-only: its viewer may not "
                f"{action} {resource} from it (c.NotebenchApp.voila_actions is off)")
    if resource != "notebench:core" and resource not in {f"notebench:{a}" for a in read_areas}:
        return (f"this Voila page may not read {resource} "
                "(c.NotebenchApp.voila_read_areas)")
    return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class ViewerTokens:
    """Tokens minted for users, each valid for ``ttl`` seconds.

    At most ``limit`` are outstanding: minting one more first drops the expired ones,
    then the oldest. ``clock`` (monotonic seconds) is injectable for tests.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.clock = clock
        self.limit = limit
        self._grants: OrderedDict[bytes, tuple[Any, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._grants)

    def mint(self, user: Any, ttl: float) -> str:
        """A new token that stands for ``user`` for ``ttl`` seconds."""
        if not ttl > 0:
            raise ValueError("ttl must be positive")
        token = PREFIX + secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            if len(self._grants) >= self.limit:
                self._drop_expired(now)
            while len(self._grants) >= self.limit:
                self._grants.popitem(last=False)
            self._grants[_digest(token)] = (user, now + ttl)
        return token

    def resolve(self, token: str) -> Any | None:
        """The user a live token was minted for; None when unknown or expired."""
        if not token.startswith(PREFIX):
            return None
        key = _digest(token)
        with self._lock:
            grant = self._grants.get(key)
            if grant is None:
                return None
            user, expires = grant
            if self.clock() >= expires:
                del self._grants[key]
                return None
            return user

    def revoke(self, token: str) -> bool:
        """Forget a token; whether it was known."""
        with self._lock:
            return self._grants.pop(_digest(token), None) is not None

    def _drop_expired(self, now: float) -> None:
        for key in [k for k, (_, expires) in self._grants.items() if now >= expires]:
            del self._grants[key]


def load_secret(path: Path) -> bytes:
    """The secret kept in ``path``; the first call creates it: ``SECRET_BYTES`` random
    bytes, mode 0600, written to a temp file, fsynced and renamed (a crash leaves no half
    key). Blocking: call it while the server is built or from a thread."""
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        secret = b""
    if len(secret) == SECRET_BYTES:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)  # readable by others: no longer
        return secret
    secret = secrets.token_bytes(SECRET_BYTES)
    write_bytes_atomic(path, secret, mode=0o600)
    return secret


class JobTokens:
    """Tokens of remote jobs: ``nbj_<job id>_<mac>``, the mac an HMAC-SHA256 of the id.

    Nothing per token is stored: a token resolves while its job is allowed (``allow`` at
    launch and adoption, ``revoke`` when the job ends). Thread-safe.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the secret must have at least 16 bytes")
        self._secret = secret
        self._allowed: set[str] = set()
        self._lock = threading.Lock()

    def _mac(self, job_id: str) -> str:
        digest = hmac.new(self._secret, job_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode()[:_MAC_CHARS]

    def mint(self, job_id: str) -> str:
        """The token of ``job_id`` (the same for every call and after a restart)."""
        if not is_job_id(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        return f"{JOB_PREFIX}{job_id}_{self._mac(job_id)}"

    def allow(self, job_id: str) -> None:
        """Let the job's token resolve."""
        with self._lock:
            self._allowed.add(job_id)

    def revoke(self, job_id: str) -> bool:
        """Stop the job's token from resolving; whether it was allowed."""
        with self._lock:
            if job_id not in self._allowed:
                return False
            self._allowed.discard(job_id)
            return True

    def allowed(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._allowed

    def job_of(self, token: str) -> str | None:
        """The job id a well-formed token with a valid mac names (allowed or not)."""
        if not token.startswith(JOB_PREFIX) or len(token) < len(JOB_PREFIX) + _MAC_CHARS + 2:
            return None
        body, mac = token[len(JOB_PREFIX):-_MAC_CHARS], token[-_MAC_CHARS:]
        if not body.endswith("_"):
            return None
        job_id = body[:-1]
        if not is_job_id(job_id):
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(job_id).encode()):
            return None
        return job_id

    def resolve(self, token: str) -> str | None:
        """The job id of a valid token whose job is allowed; None otherwise."""
        job_id = self.job_of(token)
        return job_id if job_id is not None and self.allowed(job_id) else None
