"""The public liveness probe (``notebench/livez``): only with ``public_liveness``, without
authentication, telling nothing but the outcome, never counted as user activity."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from tornado.httpclient import AsyncHTTPClient

from .conftest import INTERVAL

PUBLIC = {"interval": INTERVAL, "public_liveness": True}
OLD = datetime(2000, 1, 1, tzinfo=timezone.utc)


async def fetch(port: int, base_url: str, path: str, *, method: str = "GET",
                headers: dict | None = None):
    url = f"http://127.0.0.1:{port}{base_url}{path}"
    body = b"" if method == "POST" else None
    return await AsyncHTTPClient().fetch(url, method=method, headers=headers or {},
                                         body=body, raise_error=False)


async def test_absent_unless_asked_for(jp_http_port, jp_base_url, jp_auth_header,
                                       http_server_client, monitoring):
    assert not monitoring.public_liveness
    for headers in ({}, jp_auth_header):
        response = await fetch(jp_http_port, jp_base_url, "notebench/livez", headers=headers)
        assert response.code == 404


@pytest.mark.parametrize("monitoring_config", [PUBLIC])
async def test_public_probe_tells_only_the_status(jp_http_port, jp_base_url, jp_auth_header,
                                                  http_server_client, jp_serverapp,
                                                  monitoring):
    settings = jp_serverapp.web_app.settings
    settings["api_last_activity"] = OLD
    for headers in ({}, jp_auth_header):  # a token changes nothing, and is no activity
        response = await fetch(jp_http_port, jp_base_url, "notebench/livez", headers=headers)
        assert response.code == 200
        assert json.loads(response.body) == {"status": "ok"}
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Content-Type"].startswith("application/json")
        head = await fetch(jp_http_port, jp_base_url, "notebench/livez", method="HEAD",
                           headers=headers)
        assert head.code == 200 and head.body == b""
    assert settings["api_last_activity"] == OLD
    for method in ("POST", "OPTIONS"):
        refused = await fetch(jp_http_port, jp_base_url, "notebench/livez", method=method)
        assert refused.code == 405, method
    # readiness (and the authenticated liveness probe) still need a token
    for probe in ("ready", "live"):
        anonymous = await fetch(jp_http_port, jp_base_url,
                                f"notebench/api/monitoring/health?probe={probe}")
        assert anonymous.code in (401, 403)
        assert b"components" not in anonymous.body
    ready = await fetch(jp_http_port, jp_base_url, "notebench/api/monitoring/health",
                        headers=jp_auth_header)
    assert ready.code in (200, 503) and "components" in json.loads(ready.body)


@pytest.mark.parametrize("monitoring_config", [PUBLIC])
async def test_503_when_the_live_check_fails(jp_http_port, jp_base_url, http_server_client,
                                             monitoring, monkeypatch):
    async def failing(*, live_only: bool = False):
        return 503, {"status": "fail", "failed": ["store"], "detail": "/secret/path"}

    monkeypatch.setattr(monitoring.health, "check", failing)
    response = await fetch(jp_http_port, jp_base_url, "notebench/livez")
    assert response.code == 503
    assert json.loads(response.body) == {"status": "fail"}
    assert response.headers["Cache-Control"] == "no-store"

    async def broken(*, live_only: bool = False):
        raise RuntimeError("/secret/path")

    monkeypatch.setattr(monitoring.health, "check", broken)
    response = await fetch(jp_http_port, jp_base_url, "notebench/livez")
    assert response.code == 503 and json.loads(response.body) == {"status": "fail"}
