"""Every route the extension registers refuses anonymous and cross-site requests."""

from __future__ import annotations

import re
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from tests.authorizers import NoExecuteAuthorizer, ReadOnlyAuthorizer

METHODS = ("get", "post", "put", "patch", "delete")


def registered_routes(serverapp: Any) -> list[tuple[str, type]]:
    """(pattern, handler) of every rule whose pattern is under notebench/api/."""
    routes = []

    def walk(router: Any) -> None:
        for rule in getattr(router, "rules", []):
            if hasattr(rule.target, "rules"):
                walk(rule.target)
                continue
            pattern = getattr(rule.matcher, "regex", None)
            if pattern is not None and "notebench/api/" in pattern.pattern:
                routes.append((pattern.pattern, rule.target))

    walk(serverapp.web_app.default_router)
    return routes


def concrete_path(pattern: str) -> str:
    """A request path matching the route pattern (groups filled with a sample value)."""
    path = re.sub(r"\([^)]*\)", "x1", pattern.rstrip("$"))
    return path.replace("\\", "")


def methods_of(handler: type) -> list[str]:
    from tornado.web import RequestHandler

    return [m for m in METHODS if getattr(handler, m) is not getattr(RequestHandler, m)]


async def raw_fetch(port: int, path: str, method: str, headers: dict[str, str]) -> Any:
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    try:
        return await AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{port}{path}", method=method, headers=headers, body=body,
            raise_error=True, follow_redirects=False, request_timeout=20,
            allow_nonstandard_methods=True,
        )
    except HTTPClientError as exc:
        return exc.response


def test_route_enumeration_sees_the_extension(jp_serverapp):
    routes = registered_routes(jp_serverapp)
    paths = {concrete_path(p) for p, _ in routes}
    assert any(p.endswith("notebench/api/hardware") for p in paths)
    assert any(p.endswith("notebench/api/stream") for p in paths)
    assert len(routes) >= 8


async def test_every_route_refuses_anonymous_requests(jp_serverapp, jp_http_port,
                                                      http_server_client):
    checked = 0
    for pattern, handler in registered_routes(jp_serverapp):
        for method in methods_of(handler):
            response = await raw_fetch(jp_http_port, concrete_path(pattern), method.upper(), {})
            assert response is not None, f"{method} {pattern}: no response"
            assert response.code in (401, 403), f"{method.upper()} {pattern} -> {response.code}"
            checked += 1
    assert checked >= 10


async def token_cookie(jp_http_port: int, jp_base_url: str, jp_auth_header: dict) -> str:
    response = await raw_fetch(jp_http_port, f"{jp_base_url}notebench/api/info", "GET",
                               jp_auth_header)
    assert response.code == 200
    cookies = [c.split(";", 1)[0] for c in response.headers.get_list("Set-Cookie")]
    login = [c for c in cookies if c.startswith("username-")]
    assert login, "token login set no cookie"
    return login[0]


async def test_cookie_post_without_xsrf_is_refused(jp_serverapp, jp_http_port, jp_base_url,
                                                   jp_auth_header, http_server_client):
    cookie = await token_cookie(jp_http_port, jp_base_url, jp_auth_header)
    # the cookie alone authenticates reads
    read = await raw_fetch(jp_http_port, f"{jp_base_url}notebench/api/info", "GET",
                           {"Cookie": cookie})
    assert read.code == 200
    checked = 0
    for pattern, handler in registered_routes(jp_serverapp):
        for method in methods_of(handler):
            if method == "get":
                continue
            response = await raw_fetch(jp_http_port, concrete_path(pattern), method.upper(),
                                       {"Cookie": cookie})
            assert response.code == 403, f"{method.upper()} {pattern} -> {response.code}"
            checked += 1
    assert checked >= 3
    # with the XSRF pair the same cookie may write
    xsrf = "6e6f746562656e6368"
    ok = await raw_fetch(jp_http_port, f"{jp_base_url}notebench/api/_test/publish", "POST",
                         {"Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf})
    assert ok.code == 200


@pytest.fixture
def authorizer_config(request):
    return request.param


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": {"jpserver_extensions": {"notebench.server": True},
                    "authorizer_class": NoExecuteAuthorizer},
      "NotebenchApp": {"benchmark_quick": True}}],
)
async def test_benchmark_needs_execute_on_kernels(api):
    refused = await api("POST", "hardware/benchmark")
    assert refused.status == 403
    assert "execute" in refused.body["error"]["message"]
    status = await api("GET", "hardware/benchmark")
    assert status.status == 200
    assert status.body["state"] == "none"


@pytest.mark.parametrize(
    "jp_server_config",
    [{"ServerApp": {"jpserver_extensions": {"notebench.server": True,
                                            "tests.server_hooks": True},
                    "authorizer_class": ReadOnlyAuthorizer}}],
)
async def test_read_only_user_can_read_but_not_write(api):
    assert (await api("GET", "info")).status == 200
    refused = await api("POST", "_test/publish", {"topic": "logs"}, validate=False)
    assert refused.status == 403
    assert refused.body["error"]["code"] == "forbidden"
    assert "notebench:" in refused.body["error"]["message"]
