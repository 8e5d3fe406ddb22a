"""Facts of this machine the queue needs, and the hardware profile as one job sees it."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import psutil


def machine_facts(workspace: Path) -> dict[str, Any]:
    """Cores and visible GPUs (UUIDs in PCI bus order) for slots and thread counts."""
    try:
        from notebench.hardware import collect_static_profile

        profile = collect_static_profile(workspace)
    except Exception:
        return {"cores": os.cpu_count() or 1, "gpu_uuids": []}
    gpus = [g for g in profile.get("gpus") or [] if g.get("uuid")
            and g.get("visible_index") is not None]
    gpus.sort(key=lambda g: g.get("index", 0))
    cpu = profile.get("cpu") or {}
    return {"cores": cpu.get("effective_cores") or cpu.get("logical_cores") or 1,
            "gpu_uuids": [g["uuid"] for g in gpus]}


def thread_env(threads: int) -> dict[str, str]:
    """The environment that holds a runner to ``threads`` CPU threads."""
    value = str(max(1, threads))
    return {"OMP_NUM_THREADS": value, "MKL_NUM_THREADS": value, "NOTEBENCH_NUM_THREADS": value}


def job_profile(profile: dict[str, Any], resources: dict[str, Any]) -> dict[str, Any]:
    """The profile as one job sees it: its threads and its GPUs only."""
    view = copy.deepcopy(profile)
    cpu = view.setdefault("cpu", {})
    cpu["effective_cores"] = resources.get("threads") or cpu.get("effective_cores")
    uuids = resources.get("gpu_uuids") or []
    torch = view.setdefault("torch", {}) or {}
    if not uuids:
        view["gpus"] = []
        torch["cuda_available"] = False
        torch["devices"] = []
    else:
        view["gpus"] = [g for g in view.get("gpus") or [] if g.get("uuid") in uuids]
        if torch.get("devices"):
            torch["devices"] = torch["devices"][: len(uuids)]
    view["torch"] = torch
    return view


def run_alive(pid: int | None, started: float | None) -> bool:
    """Whether the kernel of an interactive run still runs (and is the same process)."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or proc.create_time() <= float(started) + 1.0
    except psutil.Error:
        return False
