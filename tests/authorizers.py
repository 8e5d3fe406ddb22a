"""Authorizers for tests: users with fewer rights than the server owner."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth import Authorizer


class NoExecuteAuthorizer(Authorizer):
    """May read and write everything, but not execute code in kernels."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not (action == "execute" and resource == "kernels")


class ReadOnlyAuthorizer(Authorizer):
    """May only read."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return action == "read"
