"""The served OpenAPI document's ``servers`` follow the server's ``base_url`` (JupyterHub
serves a user's server under ``/user/<name>/``)."""

from __future__ import annotations

import json

import pytest

from notebench.server.capability import load_capabilities, openapi_document


@pytest.mark.parametrize(("jp_base_url", "expected"), [
    ("/user/alice/", "/user/alice/notebench/api"),
    ("/", "/notebench/api"),
    ("/a%40b/", "/a%40b/notebench/api"),  # pytest-jupyter's own default
])
async def test_servers_follow_the_base_url(api, services, jp_base_url, expected):
    response = await api("GET", "openapi.json")
    assert response.status == 200
    assert response.body["servers"] == [{"url": expected}]
    assert "/info" in response.body["paths"]
    again = await api("GET", "openapi.json")
    assert again.body == response.body
    # encoded once for the server's base_url, and only for it
    assert list(services._openapi) == [jp_base_url]


def test_the_document_without_a_base_url_is_the_shipped_one():
    document = json.loads(openapi_document(load_capabilities()))
    assert document["servers"] == [{"url": "/notebench/api"}]
