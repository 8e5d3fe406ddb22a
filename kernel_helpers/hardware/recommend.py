"""Training settings recommended for a hardware profile, each with a one-line reason.

A pure function of the profile dict (see ``profile.hardware_profile``): the same profile
always gives the same settings, so the server can recompute them from a stored profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GIB = 1024**3
MAX_WORKERS = 8
BUDGET_FRACTION = 0.8


@dataclass(frozen=True)
class _Gpu:
    name: str
    capability: tuple[int, int] | None
    total_memory_bytes: int | None


def _setting(value: Any, reason: str) -> dict[str, Any]:
    return {"value": value, "reason": reason}


def _gib(value: float) -> str:
    return f"{value / GIB:.1f} GiB"


def _capability(text: Any) -> tuple[int, int] | None:
    try:
        major, minor = str(text).split(".", 1)
        return int(major), int(minor)
    except (TypeError, ValueError):
        return None


def _cuda_gpus(profile: dict[str, Any]) -> list[_Gpu]:
    """The GPUs torch can use, in CUDA order (from the probe, else from NVML)."""
    torch_info = profile.get("torch") or {}
    if torch_info.get("installed") is False or torch_info.get("cuda_available") is False:
        return []
    if torch_info.get("cuda_available") and torch_info.get("devices"):
        return [
            _Gpu(
                str(d.get("name") or f"GPU {i}"),
                _capability(d.get("capability")),
                d.get("total_memory_bytes"),
            )
            for i, d in enumerate(torch_info["devices"])
        ]
    # torch facts unknown (not probed yet): trust the driver's view of visible GPUs
    visible = [g for g in profile.get("gpus") or [] if g.get("visible_index") is not None]
    visible.sort(key=lambda g: g["visible_index"])
    return [
        _Gpu(
            str(g.get("name") or f"GPU {g['visible_index']}"),
            _capability(g.get("compute_capability")),
            g.get("memory_total_bytes"),
        )
        for g in visible
    ]


def _power_of_two_at_most(value: float, low: int, high: int) -> int:
    size = low
    while size * 2 <= min(value, high):
        size *= 2
    return size


class _Recommender:
    def __init__(self, profile: dict[str, Any]) -> None:
        self.torch = profile.get("torch") or {}
        self.cpu = profile.get("cpu") or {}
        self.memory = profile.get("memory") or {}
        self.nvml_gpus = profile.get("gpus") or []
        self.gpu_status = profile.get("gpu_status") or {}
        self.gpus = _cuda_gpus(profile)
        self.mps = not self.gpus and bool(self.torch.get("mps_available"))
        self.backend = "cuda" if self.gpus else "mps" if self.mps else "cpu"
        self.cores = max(
            1, int(self.cpu.get("effective_cores") or self.cpu.get("logical_cores") or 1)
        )

    # --- helpers ---------------------------------------------------------------

    def _cores_text(self) -> str:
        parts = [f"{self.cpu.get('logical_cores') or '?'} logical"]
        if self.cpu.get("cgroup_quota_cores"):
            parts.append(f"cgroup quota {self.cpu['cgroup_quota_cores']:g}")
        affinity = self.cpu.get("affinity_cores")
        if affinity and affinity != self.cpu.get("logical_cores"):
            parts.append(f"affinity {affinity}")
        return f"{self.cores} usable cores ({', '.join(parts)})"

    def _available_ram(self) -> tuple[int | None, str]:
        memory = self.memory
        for key, label in (
            ("effective_available_bytes", "available"),
            ("available_bytes", "available"),
            ("total_bytes", "total"),
        ):
            if memory.get(key):
                limit = memory.get("cgroup_limit_bytes")
                extra = f", cgroup limit {_gib(limit)}" if limit else ""
                return int(memory[key]), f"{_gib(memory[key])} of RAM {label}{extra}"
        return None, "RAM unknown"

    # --- settings --------------------------------------------------------------

    def device(self) -> dict[str, Any]:
        if self.gpus:
            first = self.gpus[0]
            count = len(self.gpus)
            return _setting(
                "cuda",
                f"{count} CUDA GPU{'s' if count > 1 else ''} visible to torch; "
                f"'cuda' is GPU 0 ({first.name})",
            )
        if self.mps:
            return _setting("mps", "no CUDA GPU, and torch reports Apple MPS available")
        return _setting("cpu", self._cpu_reason())

    def _cpu_reason(self) -> str:
        if self.torch.get("installed") is False:
            return "torch is not installed: training would run on the CPU"
        hidden = [g for g in self.nvml_gpus if g.get("visible_index") is None]
        if self.nvml_gpus and len(hidden) == len(self.nvml_gpus):
            cvd = self.gpu_status.get("cuda_visible_devices")
            return (
                f"CUDA_VISIBLE_DEVICES={cvd!r} hides all {len(self.nvml_gpus)} GPUs: "
                "training runs on the CPU"
            )
        if self.nvml_gpus and self.torch.get("cuda_available") is False:
            return (
                f"{len(self.nvml_gpus)} NVIDIA GPU(s) found but torch "
                f"{self.torch.get('version') or ''} has no CUDA support (CPU-only build?): "
                "training runs on the CPU"
            )
        return "no CUDA GPU visible and torch has no MPS: training runs on the CPU"

    def precision(self) -> dict[str, Any]:
        if self.gpus:
            gpu = self.gpus[0]
            cc = gpu.capability
            if cc is None:
                return _setting("32", f"compute capability of {gpu.name} unknown: fp32 is safe")
            cc_text = f"{cc[0]}.{cc[1]}"
            if cc >= (8, 0):
                return _setting(
                    "bf16-mixed",
                    f"{gpu.name} has compute capability {cc_text} (>= 8.0): bf16 autocast "
                    "runs on tensor cores and needs no loss scaling",
                )
            if cc >= (6, 0):
                return _setting(
                    "16-mixed",
                    f"{gpu.name} has compute capability {cc_text} (< 8.0, no fast bf16): "
                    "fp16 autocast with loss scaling",
                )
            return _setting(
                "32",
                f"{gpu.name} has compute capability {cc_text} (< 6.0): no fast half precision",
            )
        if self.mps:
            return _setting(
                "32", "Apple MPS: mixed-precision support varies with torch and macOS; fp32 is safe"
            )
        flags = self.cpu.get("flags") or {}
        if self.torch.get("bf16_fast_cpu") or flags.get("amx_bf16") or flags.get("avx512_bf16"):
            return _setting(
                "32",
                "training on the CPU: fp32 is the safe default; this CPU has native bf16 "
                "(AMX/avx512_bf16), so 'bf16-mixed' may be faster: measure it",
            )
        return _setting(
            "32",
            "training on the CPU without native bf16 (no AMX/avx512_bf16): "
            "bf16 would be emulated and slower, so fp32",
        )

    def batch_size(self, precision: str) -> dict[str, Any]:
        note = "a heuristic starting point: refine by measurement (grow until memory or "
        note += "throughput stops improving)"
        if self.gpus:
            memory = self.gpus[0].total_memory_bytes
            if memory:
                per_gib = 4 if precision.endswith("-mixed") else 2
                size = _power_of_two_at_most(memory / GIB * per_gib, 8, 1024)
                return _setting(size, f"from {_gib(memory)} of GPU memory, {note}")
            return _setting(32, f"GPU memory unknown, {note}")
        ram, ram_text = self._available_ram()
        ram_cap = ram / GIB * 4 if ram else 256
        high = 128 if self.mps else 256
        size = _power_of_two_at_most(min(8 * self.cores, ram_cap), 8, high)
        where = "Apple MPS" if self.mps else "the CPU"
        return _setting(size, f"for {where} with {self._cores_text()} and {ram_text}, {note}")

    def num_workers(self) -> dict[str, Any]:
        if self.cores <= 1:
            return _setting(0, f"{self._cores_text()}: load data in the main process")
        workers = min(MAX_WORKERS, self.cores - 1)
        return _setting(
            workers,
            f"{self._cores_text()}: one for the main process, {workers} for data loading "
            f"(capped at {MAX_WORKERS})",
        )

    def pin_memory(self) -> dict[str, Any]:
        if self.gpus:
            return _setting(True, "pinned host memory speeds up copies to the CUDA GPU")
        return _setting(False, "pinned memory only helps copies to a CUDA GPU")

    def memory_budget(self) -> dict[str, Any]:
        percent = f"{BUDGET_FRACTION:.0%}"
        if self.gpus:
            gpu = self.gpus[0]
            if gpu.total_memory_bytes:
                return _setting(
                    int(gpu.total_memory_bytes * BUDGET_FRACTION),
                    f"{percent} of {_gib(gpu.total_memory_bytes)} on GPU 0 ({gpu.name}), "
                    "leaving room for the CUDA context and fragmentation",
                )
            return _setting(None, "GPU memory unknown")
        ram, ram_text = self._available_ram()
        if ram is None:
            return _setting(None, "RAM unknown")
        shared = " (MPS shares system memory)" if self.mps else ""
        return _setting(int(ram * BUDGET_FRACTION), f"{percent} of {ram_text}{shared}")

    def threads(self) -> dict[str, Any]:
        return _setting(self.cores, f"torch intra-op threads = {self._cores_text()}")

    def all(self) -> dict[str, dict[str, Any]]:
        precision = self.precision()
        return {
            "device": self.device(),
            "precision": precision,
            "batch_size": self.batch_size(precision["value"]),
            "num_workers": self.num_workers(),
            "pin_memory": self.pin_memory(),
            "memory_budget_bytes": self.memory_budget(),
            "threads": self.threads(),
        }


def recommended_settings(profile: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Setting name -> {"value", "reason"} for ``profile`` (collected now if None)."""
    if profile is None:
        from .profile import hardware_profile

        profile = hardware_profile()
    return _Recommender(profile).all()
