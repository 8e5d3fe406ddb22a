"""Configured roots: a category on another folder (a shared disk) and a new category."""

from __future__ import annotations

import re

import pytest

from tests.integration.assets.samples import csv_bytes, png_bytes


@pytest.fixture
def assets_config(tmp_path):
    return {"roots": {"datasets": str(tmp_path / "shared"), "extra": str(tmp_path / "extra")},
            "allowed_types": {"extra": ["csv"]}, "size_limits": {"extra": 1000},
            "scan_interval": 0.0}


async def test_roots_can_live_elsewhere_and_new_categories_can_be_added(api, upload,
                                                                        tmp_path):
    roots = {r["category"]: r for r in (await api("GET", "assets/roots")).body["roots"]}
    assert roots["datasets"]["path"] == str(tmp_path / "shared")
    assert roots["extra"]["types"] == ["csv"] and roots["extra"]["max_bytes"] == 1000
    stored = await upload("datasets", "far.csv", csv_bytes())
    assert stored.status == 201
    assert (tmp_path / "shared" / "far.csv").read_bytes() == csv_bytes()
    assert (await upload("extra", "e.csv", csv_bytes())).status == 201
    assert (await upload("extra", "e.png", png_bytes())).status == 415
    assert (await upload("extra", "big.csv", csv_bytes(200))).status == 413
    page = await api("GET", "assets/list/extra")
    assert [i["name"] for i in page.body["items"]] == ["e.csv"]


async def test_every_asset_route_and_method_is_documented(api):
    from tornado.web import RequestHandler

    from notebench.server.assets.handlers import asset_routes

    document = (await api("GET", "openapi.json")).body
    documented = {re.sub(r"\{[^}]+\}", "{}", path): item
                  for path, item in document["paths"].items()}
    for pattern, handler in asset_routes():
        template = "/" + re.sub(r"\([^)]*\)", "{}", pattern)
        assert template in documented, template
        for method in ("get", "head", "post", "patch", "delete"):
            if getattr(handler, method) is not getattr(RequestHandler, method):
                assert method in documented[template], f"{method} {template}"
