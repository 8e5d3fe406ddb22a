"""The hardware profile: one JSON-ready dict describing this machine for training."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from .cgroups import read_cgroup_limits
from .nvml import nvml
from .system import cpu_info, memory_info, storage_info
from .torch_probe import probe_torch


def gpu_status() -> dict[str, Any]:
    """Whether NVML sees GPUs, why not, and the driver and visibility settings."""
    return {
        "available": nvml.available(),
        "reason": nvml.reason(),
        "driver_version": nvml.driver_version(),
        "cuda_driver_version": nvml.cuda_driver_version(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "cuda_device_order": os.environ.get("CUDA_DEVICE_ORDER"),
    }


def python_info() -> dict[str, Any]:
    return {
        "version": platform.python_version(),
        "executable": sys.executable,
        "platform": platform.platform(),
    }


def collect_static_profile(workspace: str | Path | None = None) -> dict[str, Any]:
    """Everything but torch: fast, no subprocess (safe to run in a server thread).

    The ``"torch"`` key is absent; add it with ``probe_torch()`` when it arrives.
    """
    cgroup = read_cgroup_limits()
    return {
        "cpu": cpu_info(cgroup=cgroup),
        "memory": memory_info(cgroup=cgroup),
        "gpus": nvml.devices(),
        "gpu_status": gpu_status(),
        "storage": storage_info(workspace if workspace is not None else Path.cwd()),
        "python": python_info(),
        "collected_at": time.time(),
    }


def hardware_profile(
    *,
    torch_info: dict[str, Any] | None = None,
    workspace: str | Path | None = None,
) -> dict[str, Any]:
    """The static profile plus torch facts (probed in a child process if not given)."""
    profile = collect_static_profile(workspace)
    profile["torch"] = torch_info if torch_info is not None else probe_torch()
    return profile


def fingerprint(profile: dict[str, Any]) -> str:
    """A short hash that changes when the machine or its software stack does.

    Covers CPU model and count, total memory, GPU UUIDs, driver and torch versions.
    """
    cpu = profile.get("cpu") or {}
    memory = profile.get("memory") or {}
    torch_info = profile.get("torch") or {}
    identity = {
        "cpu_model": cpu.get("model"),
        "logical_cores": cpu.get("logical_cores"),
        "memory_total_bytes": memory.get("total_bytes"),
        "gpu_uuids": sorted(str(g.get("uuid")) for g in profile.get("gpus") or []),
        "driver_version": (profile.get("gpu_status") or {}).get("driver_version"),
        "torch_version": torch_info.get("version"),
    }
    blob = json.dumps(identity, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
