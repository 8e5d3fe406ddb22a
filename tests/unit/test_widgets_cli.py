"""``notebench dashboard``: one Jupyter server with notebench and Voila, on the dashboard."""

from __future__ import annotations

import os
import sys

from notebench import cli


def test_dashboard_command_starts_a_server_with_notebench_and_voila(tmp_path):
    args = cli.parse_args(["dashboard", "--root-dir", str(tmp_path), "--port", "9123",
                           "--no-browser", "--app", "jobs", "--ServerApp.base_url=/x/"])
    cmd = cli.build_dashboard_command(args)
    assert cmd[:3] == [sys.executable, "-m", "jupyter_server"]
    assert f"--ServerApp.root_dir={os.path.abspath(tmp_path)}" in cmd
    assert "--ServerApp.jpserver_extensions={'notebench.server': True, " \
           "'voila.server_extension': True}" in cmd
    assert "--ServerApp.default_url=/voila/render/notebench/dashboards/jobs.ipynb" in cmd
    assert {"--port=9123", "--no-browser"} <= set(cmd)
    assert cmd[-1] == "--ServerApp.base_url=/x/"  # unknown options go to jupyter server


def test_dashboard_never_adds_allow_root_itself(monkeypatch):
    """Running a server as root is the user's decision: even as root, no --allow-root."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    args = cli.parse_args(["dashboard", "--no-browser"])
    assert "--allow-root" not in cli.build_dashboard_command(args)
    given = cli.parse_args(["dashboard", "--allow-root"])
    assert cli.build_dashboard_command(given).count("--allow-root") == 1


def test_dashboard_url_names_the_seeded_voila_app():
    assert cli.dashboard_url_path() == "voila/render/notebench/dashboards/dashboard.ipynb"
    assert os.path.basename(cli.dashboard_url_path("assets")) == "assets.ipynb"
