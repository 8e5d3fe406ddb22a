"""deploy/'s files checked by the tools that read them: promtool (rules, their unit tests),
systemd-analyze (the units), nginx -t (the configuration), and the dashboard's structure.
tests/deploy/test_hub.py runs them all together for real."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.stack import DEPLOY, NGINX, make_certificate, render

HERE = Path(__file__).parent
PROMTOOL = shutil.which("promtool")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make test does)")
def test_promtool_accepts_the_alert_rules_and_their_unit_tests_pass() -> None:
    checked = subprocess.run([PROMTOOL, "check", "rules", str(DEPLOY / "alerts.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=HERE,
                            capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", sorted(p.name for p in (DEPLOY / "systemd").glob("*.service")))
def test_systemd_accepts_the_unit(unit: str, tmp_path: Path) -> None:
    shutil.copy(DEPLOY / "systemd" / unit, tmp_path / unit)
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(tmp_path / unit)],
                            capture_output=True, text=True, timeout=60)
    # the programs live where an installation puts them (/opt/notebench/venv), not here
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if line.strip() and not re.search(r"Command /opt/notebench/venv/bin/\S+ is not "
                                                  r"executable", line)]
    assert problems == []


@pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed (make test does)")
def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    text = render((DEPLOY / "nginx.conf").read_text(), {
        "pid /run/nginx.pid;": f"pid {tmp_path / 'nginx.pid'};",
        "/var/log/nginx/": f"{tmp_path}/",
        "/etc/notebench/tls/fullchain.pem": str(cert),
        "/etc/notebench/tls/privkey.pem": str(key),
    })
    (tmp_path / "nginx.conf").write_text(text)
    result = subprocess.run([NGINX, "-t", "-c", str(tmp_path / "nginx.conf"), "-p",
                             str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # what the deployment relies on is stated, not left to nginx's defaults
    for needed in ("proxy_buffering off;", "proxy_http_version 1.1;", "Strict-Transport-Security",
                   "ssl_protocols TLSv1.2 TLSv1.3;", "limit_req zone=notebench_api",
                   "proxy_set_header Upgrade $http_upgrade;", "client_max_body_size 20g;"):
        assert needed in text, needed


def test_the_dashboard_is_grafana_json_over_one_prometheus_datasource() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "notebench-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    titles = [p["title"] for p in dashboard["panels"]]
    assert len(set(titles)) == len(titles)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for shown in ("notebench_jobs", 'state="queued"', "notebench_gpu", "notebench_sse_streams",
                  "notebench_alerts"):  # per-user jobs, queue, GPU use, SSE clients, alerts
        assert shown in exprs, shown
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all("by (user" in t["expr"] or "jupyterhub_" in t["expr"]
                                        for t in panel["targets"]), panel["title"]
