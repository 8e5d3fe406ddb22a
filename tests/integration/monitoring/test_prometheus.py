"""Prometheus exposition: authentication, promtool's checks, a private registry, the rules."""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources

import prometheus_client
import pytest
import yaml
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from notebench.server.monitoring.alerts import builtin_rules

from .conftest import INTERVAL, wait_for

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.usefixtures("promtool")


@pytest.fixture
def promtool() -> str:
    """promtool must be there: ``make test`` installs Debian's prometheus package."""
    assert PROMTOOL is not None, "promtool is missing: install Debian's prometheus package"
    return PROMTOOL
RULES_FILE = resources.files("notebench.server") / "monitoring" / "prometheus_rules.yml"


async def scrape(port: int, base_url: str, headers: dict | None = None, path: str = ""):
    url = f"http://127.0.0.1:{port}{base_url}{path or 'notebench/metrics'}"
    try:
        return await AsyncHTTPClient().fetch(url, headers=headers or {}, raise_error=True)
    except HTTPClientError as exc:
        return exc.response


async def test_metrics_need_authentication(jp_http_port, jp_base_url, jp_auth_header,
                                           http_server_client, monitoring):
    anonymous = await scrape(jp_http_port, jp_base_url)
    assert anonymous.code == 403
    await wait_for(lambda: monitoring.latest_sample)
    response = await scrape(jp_http_port, jp_base_url, jp_auth_header)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.body.decode()
    for name in ("notebench_cpu_usage_ratio", "notebench_memory_used_bytes",
                 "notebench_memory_usage_ratio", "notebench_storage_free_bytes{root=\"workspace\"}",
                 "notebench_jobs", "notebench_sampler_samples_total",
                 "notebench_http_request_duration_seconds_bucket",
                 "notebench_events_published_total"):
        assert name in text, name
    # every job state, zeros too (a dashboard's queue length is 0, not "no data")
    assert 'notebench_jobs{state="queued"} 0.0' in text
    gpus = monitoring.latest_sample["gpu_status"]["count"]  # 0 here: NVML is absent
    assert f"notebench_gpus {float(gpus)}" in text
    # never in prometheus_client's global registry (it feeds jupyter_server's /metrics)
    assert b"notebench_" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)
    server_metrics = await scrape(jp_http_port, jp_base_url, jp_auth_header, "metrics")
    assert server_metrics.code == 200 and b"notebench_" not in server_metrics.body


@needs_promtool
async def test_promtool_accepts_the_exposition(jp_http_port, jp_base_url, jp_auth_header,
                                               http_server_client, monitoring, api, source):
    await source("test_value", 1)  # not a catalogued metric: never exported
    await api("GET", "info")  # a timed request for the latency histogram
    await wait_for(lambda: monitoring.sampler.samples >= 3)
    response = await scrape(jp_http_port, jp_base_url, jp_auth_header)
    assert b"test_value" not in response.body
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=response.body,
                            capture_output=True, timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


@pytest.mark.parametrize("monitoring_config", [{"interval": INTERVAL, "metrics_public": True}])
async def test_metrics_can_be_public(jp_http_port, jp_base_url, http_server_client, monitoring):
    await wait_for(lambda: monitoring.latest_sample)
    response = await scrape(jp_http_port, jp_base_url)
    assert response.code == 200 and b"notebench_cpu_usage_ratio" in response.body


@needs_promtool
def test_promtool_accepts_the_shipped_rules(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_bytes(RULES_FILE.read_bytes())
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True,
                            timeout=60)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_the_shipped_rules_mirror_the_built_in_ones():
    document = yaml.safe_load(RULES_FILE.read_text())
    mirrored = {rule["labels"]["notebench_rule"] for group in document["groups"]
                for rule in group["rules"]}
    assert mirrored == {rule.name for rule in builtin_rules()}
