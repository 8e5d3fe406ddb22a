"""Recommended settings from synthetic hardware profiles."""

from __future__ import annotations

from typing import Any

import pytest

from notebench.hardware.recommend import recommended_settings

GIB = 1024**3
SETTINGS = {
    "device",
    "precision",
    "batch_size",
    "num_workers",
    "pin_memory",
    "memory_budget_bytes",
    "threads",
}


def profile(
    *,
    logical: int = 2,
    quota: float | None = None,
    effective: int | None = None,
    ram_available: int = 12 * GIB,
    cgroup_limit: int | None = None,
    torch: dict[str, Any] | None = None,
    gpus: list[dict[str, Any]] | None = None,
    cvd: str | None = None,
    flags: dict[str, bool] | None = None,
) -> dict[str, Any]:
    return {
        "cpu": {
            "model": "Test CPU",
            "logical_cores": logical,
            "affinity_cores": logical,
            "cgroup_quota_cores": quota,
            "effective_cores": effective or logical,
            "flags": flags or {"avx2": True, "avx512f": False},
        },
        "memory": {
            "total_bytes": 16 * GIB,
            "available_bytes": ram_available,
            "cgroup_limit_bytes": cgroup_limit,
            "effective_available_bytes": ram_available,
        },
        "gpus": gpus or [],
        "gpu_status": {"available": bool(gpus), "cuda_visible_devices": cvd},
        "torch": torch
        or {"installed": True, "version": "2.4.0", "cuda_available": False, "devices": []},
    }


def cuda_torch(name: str, capability: str, memory: int, count: int = 1) -> dict[str, Any]:
    device = {"name": name, "capability": capability, "total_memory_bytes": memory}
    return {
        "installed": True,
        "version": "2.4.0+cu121",
        "cuda_available": True,
        "device_count": count,
        "devices": [dict(device, index=i) for i in range(count)],
    }


def values(settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    assert set(settings) == SETTINGS
    for setting in settings.values():
        assert set(setting) == {"value", "reason"}
        assert setting["reason"] and "\n" not in setting["reason"]
    return {name: s["value"] for name, s in settings.items()}


def test_cpu_only_two_cores_with_quota() -> None:
    settings = recommended_settings(
        profile(logical=2, quota=1.5, effective=2, ram_available=3 * GIB, cgroup_limit=4 * GIB)
    )
    got = values(settings)
    assert got["device"] == "cpu"
    assert "no CUDA GPU visible and torch has no MPS" in settings["device"]["reason"]
    assert got["precision"] == "32"
    assert "CPU" in settings["precision"]["reason"]
    assert got["num_workers"] == 1
    assert "quota 1.5" in settings["num_workers"]["reason"]
    assert got["pin_memory"] is False
    assert got["threads"] == 2
    assert got["memory_budget_bytes"] == int(3 * GIB * 0.8)
    assert "cgroup limit 4.0 GiB" in settings["memory_budget_bytes"]["reason"]
    assert isinstance(got["batch_size"], int) and 8 <= got["batch_size"] <= 64
    assert "heuristic" in settings["batch_size"]["reason"]
    assert "measurement" in settings["batch_size"]["reason"]


def test_single_core_loads_data_in_main_process() -> None:
    got = values(recommended_settings(profile(logical=4, quota=1.0, effective=1)))
    assert got["num_workers"] == 0
    assert got["threads"] == 1


def test_many_cores_cap_workers_at_eight() -> None:
    assert values(recommended_settings(profile(logical=64)))["num_workers"] == 8


def test_a100_uses_bf16() -> None:
    settings = recommended_settings(
        profile(logical=32, torch=cuda_torch("NVIDIA A100-SXM4-40GB", "8.0", 40 * GIB))
    )
    got = values(settings)
    assert got["device"] == "cuda"
    assert got["precision"] == "bf16-mixed"
    assert "8.0" in settings["precision"]["reason"]
    assert got["pin_memory"] is True
    assert got["memory_budget_bytes"] == int(40 * GIB * 0.8)
    assert got["num_workers"] == 8
    assert got["batch_size"] == 128
    assert "40.0 GiB" in settings["batch_size"]["reason"]


def test_v100_uses_fp16() -> None:
    settings = recommended_settings(
        profile(logical=8, torch=cuda_torch("Tesla V100-SXM2-16GB", "7.0", 16 * GIB, count=2))
    )
    got = values(settings)
    assert got["device"] == "cuda"
    assert "2 CUDA GPUs" in settings["device"]["reason"]
    assert got["precision"] == "16-mixed"
    assert "7.0" in settings["precision"]["reason"]
    assert got["batch_size"] == 64
    assert got["num_workers"] == 7


def test_mps() -> None:
    torch = {"installed": True, "version": "2.4.0", "cuda_available": False, "devices": []}
    settings = recommended_settings(profile(logical=10, torch=dict(torch, mps_available=True)))
    got = values(settings)
    assert got["device"] == "mps"
    assert got["precision"] == "32"
    assert got["pin_memory"] is False
    assert "MPS" in settings["memory_budget_bytes"]["reason"]


def test_gpu_hidden_by_cuda_visible_devices() -> None:
    gpus = [{"index": 0, "name": "A100", "uuid": "GPU-a", "visible_index": None}]
    settings = recommended_settings(profile(gpus=gpus, cvd=""))
    assert settings["device"]["value"] == "cpu"
    assert "CUDA_VISIBLE_DEVICES" in settings["device"]["reason"]


def test_cpu_only_torch_build_on_a_gpu_machine() -> None:
    gpus = [{"index": 0, "name": "A100", "uuid": "GPU-a", "visible_index": 0}]
    settings = recommended_settings(profile(gpus=gpus))
    assert settings["device"]["value"] == "cpu"
    assert "no CUDA support" in settings["device"]["reason"]


def test_torch_not_probed_yet_trusts_nvml() -> None:
    gpus = [
        {
            "index": 1,
            "name": "NVIDIA H100",
            "compute_capability": "9.0",
            "memory_total_bytes": 80 * GIB,
            "visible_index": 0,
        }
    ]
    settings = recommended_settings(profile(gpus=gpus, torch={"installed": None}))
    assert values(settings)["precision"] == "bf16-mixed"


def test_torch_missing() -> None:
    settings = recommended_settings(profile(torch={"installed": False, "error": "ImportError"}))
    assert settings["device"]["value"] == "cpu"
    assert "not installed" in settings["device"]["reason"]


@pytest.mark.parametrize("flags", [{"amx_bf16": True}, {"avx512_bf16": True}])
def test_cpu_with_native_bf16_mentions_it(flags: dict[str, bool]) -> None:
    settings = recommended_settings(profile(flags=flags))
    assert settings["precision"]["value"] == "32"
    assert "bf16-mixed" in settings["precision"]["reason"]


def test_empty_profile_does_not_raise() -> None:
    assert values(recommended_settings({}))["device"] == "cpu"
