"""Authorizers for tests: users with fewer rights than the server owner."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth import Authorizer
from traitlets import List, Unicode


class NoExecuteAuthorizer(Authorizer):
    """May read and write everything, but not execute code in kernels."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not (action == "execute" and resource == "kernels")


class ReadOnlyAuthorizer(Authorizer):
    """May only read."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action == "read"


class AsyncReadOnlyAuthorizer(Authorizer):
    """May only read; answers from a coroutine (as an authorizer asking a service would)."""

    async def is_authorized(self, handler: Any, user: Any, action: str,
                            resource: str) -> bool:
        return action == "read"


class AsyncNoExecuteAuthorizer(Authorizer):
    """May read and write everything but not execute code; answers from a coroutine."""

    async def is_authorized(self, handler: Any, user: Any, action: str,
                            resource: str) -> bool:
        return not (action == "execute" and resource == "kernels")


class AsyncAreaReader(Authorizer):
    """May only read, and only the notebench areas named in ``areas`` (by default the core
    alone); answers from a coroutine."""

    areas = List(Unicode(), default_value=["core"], help="Areas the user may read.").tag(
        config=True)

    async def is_authorized(self, handler: Any, user: Any, action: str,
                            resource: str) -> bool:
        return action == "read" and resource in {f"notebench:{a}" for a in self.areas}
