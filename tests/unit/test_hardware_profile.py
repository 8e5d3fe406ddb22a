"""The hardware profile, its fingerprint, and the promise never to import torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import notebench.hardware as hardware
from notebench.hardware import collect_static_profile, fingerprint, hardware_profile


def test_package_exports() -> None:
    assert set(hardware.__all__) == {
        "collect_static_profile",
        "fingerprint",
        "hardware_profile",
        "nvml",
        "recommended_settings",
    }


def test_importing_and_profiling_never_imports_torch() -> None:
    code = (
        "import notebench, notebench.hardware, sys\n"
        "notebench.hardware_profile; notebench.recommended_settings\n"
        "assert 'torch' not in sys.modules, 'import'\n"
        "profile = notebench.hardware_profile()\n"
        "assert 'torch' not in sys.modules, 'profile'\n"
        "assert profile['torch']['installed'] is True, profile['torch']\n"
        "notebench.recommended_settings(profile)\n"
        "assert 'torch' not in sys.modules, 'settings'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=180)


def test_static_profile_shape(tmp_path: Path) -> None:
    profile = collect_static_profile(tmp_path)
    assert set(profile) == {
        "cpu",
        "memory",
        "gpus",
        "gpu_status",
        "storage",
        "python",
        "collected_at",
    }
    assert profile["storage"]["path"] == str(tmp_path)
    assert profile["gpus"] == []  # no driver on the test machine
    status = profile["gpu_status"]
    assert status["available"] is False and status["reason"]
    assert profile["python"]["executable"] == sys.executable
    json.dumps(profile)  # ready to send as JSON


def test_hardware_profile_with_given_torch_info(tmp_path: Path) -> None:
    torch_info = {"installed": True, "version": "2.4.0"}
    profile = hardware_profile(torch_info=torch_info, workspace=tmp_path)
    assert profile["torch"] == torch_info
    assert profile["storage"]["path"] == str(tmp_path)


def test_fingerprint_tracks_identity_not_load() -> None:
    profile = {
        "cpu": {"model": "X", "logical_cores": 8, "frequency_mhz": {"current": 1000}},
        "memory": {"total_bytes": 1 << 34, "available_bytes": 1 << 33},
        "gpus": [{"uuid": "GPU-b"}, {"uuid": "GPU-a"}],
        "gpu_status": {"driver_version": "550.1"},
        "torch": {"version": "2.4.0"},
        "collected_at": 1.0,
    }
    base = fingerprint(profile)
    assert len(base) == 16 and int(base, 16) >= 0
    busier = json.loads(json.dumps(profile))
    busier["memory"]["available_bytes"] = 1
    busier["cpu"]["frequency_mhz"]["current"] = 3000
    busier["collected_at"] = 2.0
    busier["gpus"].reverse()
    assert fingerprint(busier) == base
    upgraded = json.loads(json.dumps(profile))
    upgraded["torch"]["version"] = "2.5.0"
    assert fingerprint(upgraded) != base
    assert fingerprint({}) == fingerprint({"gpus": []})
