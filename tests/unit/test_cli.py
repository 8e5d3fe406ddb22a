"""The ``notebench`` command line: help, profile rendering and JSON, serve command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from notebench import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "notebench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_help_lists_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "profile" in out
    assert "serve" in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "profile" in capsys.readouterr().err


def test_unknown_argument_is_an_error_outside_serve() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["profile", "--bogus"])
    assert exc.value.code == 2


def test_python_dash_m_help() -> None:
    result = run_cli("--help", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "profile" in result.stdout and "serve" in result.stdout


# ------------------------------------------------------------------- serve


def test_serve_command_defaults(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cmd = cli.build_serve_command(cli.parse_args(["serve"]))
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path}" in cmd
    assert "--LabApp.default_url=/lab/tree/notebench" in cmd
    assert "--allow-root" not in cmd
    assert "--no-browser" not in cmd
    assert not any(a.startswith("--port") for a in cmd)


def test_serve_command_options_and_extra_args(tmp_path) -> None:
    args = cli.parse_args(
        [
            "serve",
            "--port",
            "8123",
            "--no-browser",
            "--root-dir",
            str(tmp_path / "root"),
            "--ServerApp.ip=0.0.0.0",
            "--debug",
        ]
    )
    cmd = cli.build_serve_command(args)
    assert "--port=8123" in cmd
    assert "--no-browser" in cmd
    assert f"--ServerApp.root_dir={tmp_path / 'root'}" in cmd
    assert cmd[-2:] == ["--ServerApp.ip=0.0.0.0", "--debug"]  # passed through, last


def test_serve_allow_root_given_passes_once_and_relative_root(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    args = cli.parse_args(["serve", "--root-dir", "sub", "--allow-root"])
    cmd = cli.build_serve_command(args)
    assert cmd.count("--allow-root") == 1
    assert f"--ServerApp.root_dir={tmp_path / 'sub'}" in cmd


def test_serve_never_adds_allow_root_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """Running a server as root is the user's decision: even as root, no --allow-root."""
    args = cli.parse_args(["serve"])
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    assert "--allow-root" not in cli.build_serve_command(args)
    monkeypatch.setattr(os, "geteuid", lambda: 1000, raising=False)
    assert "--allow-root" not in cli.build_serve_command(args)


# ----------------------------------------------------------------- profile


def test_human_bytes_and_values() -> None:
    assert cli.human_bytes(512) == "512 B"
    assert cli.human_bytes(1536) == "1.5 KiB"
    assert cli.human_bytes(80 * 1024**3) == "80.0 GiB"
    assert cli.format_value("total_bytes", None) == "-"
    assert cli.format_value("cuda_available", True) == "yes"
    assert cli.format_value("frequency_mhz", {"current": 2400.4, "max": None}) == (
        "current 2400 MHz, max -"
    )
    assert cli.format_value("flags", {"avx2": True, "amx": False}) == "avx2"


def test_render_profile_tolerates_missing_keys() -> None:
    text = cli.render_profile({}, {})
    for section in ("CPU", "Memory", "GPUs", "Storage", "Torch", "Recommended settings"):
        assert section in text.splitlines()
    assert "none: no GPU found" in text


def test_render_profile_with_gpus_and_settings() -> None:
    profile = {
        "cpu": {"model": "Xeon", "physical_cores": 8, "logical_cores": 16},
        "memory": {"total_bytes": 64 * 1024**3, "cgroup_limit_bytes": None},
        "gpus": [
            {"index": 0, "name": "NVIDIA H100", "uuid": "GPU-1", "memory_total_bytes": 80 * 2**30}
        ],
        "gpu_status": {"available": True, "reason": None, "driver_version": "550.54"},
        "storage": {"path": "/data", "total_bytes": 2**40, "free_bytes": 2**39, "fstype": "xfs"},
        "torch": {"installed": True, "version": "2.5.1", "cuda_available": True, "devices": []},
    }
    settings = {
        "batch_size": {"value": 64, "reason": "fits 80 GiB"},
        "memory_budget_bytes": {"value": 2**33, "reason": "80% of RAM"},
    }
    text = cli.render_profile(profile, settings)
    assert "GPU 0: NVIDIA H100" in text
    assert "80.0 GiB" in text
    assert "Driver version" in text and "550.54" in text
    assert "1.0 TiB" in text
    assert "2.5.1" in text
    assert "batch_size" in text and "fits 80 GiB" in text
    assert "8.0 GiB" in text  # memory_budget_bytes formatted as bytes
    assert "none:" not in text


def test_render_profile_gpu_reason_and_skipped_torch() -> None:
    profile = {
        "gpus": [],
        "gpu_status": {"available": False, "reason": "NVML library not found"},
        "torch": {"installed": None, "skipped": True},
    }
    text = cli.render_profile(profile, None)
    assert "none: NVML library not found" in text
    assert "not probed (--no-torch)" in text


def test_profile_json_no_torch_subprocess() -> None:
    result = run_cli("profile", "--json", "--no-torch")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    profile = payload["profile"]
    for key in ("cpu", "memory", "gpus", "gpu_status", "storage", "torch"):
        assert key in profile
    assert profile["torch"] == {"installed": None, "skipped": True}
    assert isinstance(payload["recommended_settings"], dict)
    for setting in payload["recommended_settings"].values():
        assert "value" in setting and "reason" in setting


def test_profile_table_no_torch_subprocess() -> None:
    result = run_cli("profile", "--no-torch")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for section in ("CPU", "Memory", "GPUs", "Storage", "Torch", "Recommended settings"):
        assert section in lines
