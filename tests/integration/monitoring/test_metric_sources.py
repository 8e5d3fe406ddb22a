"""Metric sources: rules on a source's metrics are valid, on unknown metrics a problem; the
product serves no ``_test`` routes without the test hooks extension."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import INTERVAL

RULES = [{"name": "on_test_value", "metric": "test_value", "threshold": 1},
         {"name": "on_nothing", "metric": "nothing_value", "threshold": 1}]


@pytest.fixture
def with_hooks() -> bool:
    return True


@pytest.fixture
def monitoring_config() -> dict[str, Any]:
    return {"interval": INTERVAL, "rules": RULES}


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any], with_hooks: bool) -> dict[str, Any]:
    extensions = jp_server_config["ServerApp"]["jpserver_extensions"]
    assert extensions.get("tests.server_hooks") is True
    if not with_hooks:
        extensions = {k: v for k, v in extensions.items() if k != "tests.server_hooks"}
    return {**jp_server_config, "ServerApp": {**jp_server_config["ServerApp"],
                                              "jpserver_extensions": extensions}}


def problems_about(body: dict[str, Any], metric: str) -> list[str]:
    return [p for p in body["problems"] if repr(metric) in p and "not a metric" in p]


async def test_rules_on_a_sources_metrics_are_valid(api, monitoring):
    body = (await api("GET", "monitoring/alerts/rules")).body
    assert {"on_test_value", "on_nothing"} <= {r["name"] for r in body["rules"]}
    assert problems_about(body, "test_value") == []
    assert len(problems_about(body, "nothing_value")) == 1


async def test_the_test_source_serves_only_the_metrics_it_declares(api):
    refused = await api("POST", "_test/monitoring/values", {"name": "nothing_value",
                                                             "value": 1}, validate=False)
    assert refused.status == 400
    assert "not a metric of the test source" in refused.body["error"]["message"]


@pytest.mark.parametrize("with_hooks", [False])
async def test_without_the_hooks_no_source_and_no_test_routes(api, monitoring):
    assert monitoring.metric_sources == []
    body = (await api("GET", "monitoring/alerts/rules")).body
    assert len(problems_about(body, "test_value")) == 1
    for path in ("_test/publish", "_test/log", "_test/monitoring/values"):
        response = await api("POST", path, {}, validate=False)
        assert response.status == 404, path
        assert response.body["error"]["code"] == "not_found"
