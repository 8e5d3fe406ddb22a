"""Short-lived credentials that let a Voila page's kernel act as the person viewing it.

When Voila renders a page, notebench mints a token for the viewer and hands it to the
page's kernel (``voila_hook``); the kernel's ``notebench.Client`` sends it as
``Authorization: token nbv_...`` and ``NotebenchHandler.prepare`` resolves it back to the
viewer. Only digests of the tokens are kept, in memory: a restart forgets them all.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["PREFIX", "ViewerTokens", "scope_refusal", "token_from_header"]

#: every minted token starts with this, so it is recognised before any lookup
PREFIX = "nbv_"
DEFAULT_LIMIT = 4096

_HEADER = re.compile(r"\s*(?:token|bearer)\s+(" + PREFIX + r"[A-Za-z0-9_-]+)\s*$", re.IGNORECASE)


def token_from_header(value: str | None) -> str | None:
    """The minted token of an ``Authorization`` header value (None: not a minted token)."""
    match = _HEADER.match(value or "")
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
