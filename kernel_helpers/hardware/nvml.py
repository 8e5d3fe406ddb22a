"""The one NVML wrapper of notebench: lazy, thread-safe, and never raising.

Every query catches ``pynvml.NVMLError`` (and a missing ``pynvml``) and degrades to
``None`` for that one value, so a metric a GPU does not support costs only that metric.
Use the module-level singleton ``nvml``.

GPU indices are NVML's, which enumerates by PCI bus id. ``visible_index`` maps them to
the numbering CUDA uses under ``CUDA_VISIBLE_DEVICES`` assuming
``CUDA_DEVICE_ORDER=PCI_BUS_ID``; CUDA's default order (fastest first) can differ on
machines with mixed GPU models.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

# NVML return codes (nvml.h); read from the module when it has them.
_REASONS: dict[str, str] = {
    "NVML_ERROR_LIBRARY_NOT_FOUND": "NVIDIA driver not found (NVML library not found)",
    "NVML_ERROR_DRIVER_NOT_LOADED": "NVIDIA driver is installed but not loaded",
    "NVML_ERROR_NO_PERMISSION": "no permission to talk to the NVIDIA driver",
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": (
        "NVIDIA driver and NVML library versions differ (reload the driver or reboot)"
    ),
    "NVML_ERROR_FUNCTION_NOT_FOUND": "NVIDIA driver too old for this NVML library",
}


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _cuda_version(value: int) -> str:
    """NVML's integer CUDA version (12040) as "12.4"."""
    return f"{value // 1000}.{(value % 1000) // 10}"


def _parse_visible(value: str | None) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES entries; None when unset (all devices visible)."""
    if value is None:
        return None
    return [entry.strip() for entry in value.split(",")]


def map_visible_indices(
    cuda_visible_devices: str | None,
    gpus: Sequence[tuple[str | None, Sequence[str | None]]],
) -> tuple[list[int | None], list[list[int | None]]]:
    """CUDA device numbers of physical GPUs and of their MIG devices.

    ``gpus`` lists ``(uuid, [mig uuids])`` in NVML (PCI bus) order. Entries are parsed
    as CUDA does: integers in PCI order, ``GPU-`` uuid (unique prefix) or ``MIG-`` uuid;
    parsing stops at the first entry that matches nothing ("-1", a bad uuid), so ""
    and "-1" hide every GPU. A GPU is visible when it or one of its MIG devices is.
    """
    entries = _parse_visible(cuda_visible_devices)
    physical: list[int | None] = [None] * len(gpus)
    mig: list[list[int | None]] = [[None] * len(migs) for _, migs in gpus]
    if entries is None:
        return list(range(len(gpus))), mig
    position = 0
    for entry in entries:
        target: tuple[int, int | None] | None = None
        if entry.isdigit():
            if int(entry) < len(gpus):
                target = (int(entry), None)
        elif entry.startswith("GPU-"):
            hits = [i for i, (uuid, _) in enumerate(gpus) if uuid and uuid.startswith(entry)]
            if len(hits) == 1:
                target = (hits[0], None)
        elif entry.startswith("MIG-"):
            for i, (uuid, migs) in enumerate(gpus):
                for j, mig_uuid in enumerate(migs):
                    if mig_uuid and mig_uuid == entry:
                        target = (i, j)
                # legacy form MIG-GPU-<uuid>/<gi>/<ci> names the parent GPU
                if target is None and uuid and entry[4:].split("/")[0] == uuid:
                    target = (i, None)
        if target is None:
            break
        gpu, mig_index = target
        if mig_index is None:
            if physical[gpu] is not None:
                continue
        elif mig[gpu][mig_index] is not None:
            continue
        else:
            mig[gpu][mig_index] = position
        if physical[gpu] is None:
            physical[gpu] = position
        position += 1
    return physical, mig


class Nvml:
    """Lazy NVML session; pass ``module`` to use a stand-in for ``pynvml`` (tests)."""

    def __init__(self, module: ModuleType | Any | None = None) -> None:
        self._module = module
        self._lock = threading.Lock()
        self._initialised = False
        self._failed = False
        self._reason: str | None = None
        self._handles: list[Any] = []

    # --- session -------------------------------------------------------------

    def _error_reason(self, nv: Any, error: Exception) -> str:
        code = getattr(error, "value", None)
        for constant, reason in _REASONS.items():
            if code is not None and getattr(nv, constant, object()) == code:
                return reason
        return f"NVML could not be initialised: {error}"

    def _init(self) -> Any | None:
        """The pynvml module once NVML is up, else None (failure is remembered)."""
        if self._initialised:
            return self._module
        with self._lock:
            if self._initialised:
                return self._module
            if self._failed:
                return None
            started = False
            try:
                if self._module is None:
                    import pynvml

                    self._module = pynvml
                nv = self._module
                nv.nvmlInit()
                started = True
                count = nv.nvmlDeviceGetCount()
                self._handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            except ImportError:
                self._failed = True
                self._reason = "nvidia-ml-py (pynvml) is not installed"
                return None
            except Exception as error:  # NVMLError, or a broken library
                self._failed = True
                if started:
                    self._call("nvmlShutdown")
                nv_error = getattr(self._module, "NVMLError", None)
                if nv_error is not None and isinstance(error, nv_error):
                    self._reason = self._error_reason(self._module, error)
                else:
                    self._reason = f"NVML could not be initialised: {error!r}"
                return None
            self._initialised = True
            if not self._handles:
                self._reason = "NVIDIA driver loaded but no GPU found"
            return self._module

    def _call(self, name: str, *args: Any) -> Any:
        """``pynvml.<name>(*args)``, or None on an NVML error or a function pynvml lacks."""
        try:
            return getattr(self._module, name)(*args)
        except Exception:
            return None

    def shutdown(self) -> None:
        """End the NVML session; a later call initialises again."""
        with self._lock:
            if self._initialised and self._module is not None:
                self._call("nvmlShutdown")
            self._initialised = False
            self._failed = False
            self._reason = None
            self._handles = []

    # --- system --------------------------------------------------------------

    def available(self) -> bool:
        """NVML works and sees at least one GPU."""
        return self._init() is not None and bool(self._handles)

    def reason(self) -> str | None:
        """Why no GPU is available (None when one is)."""
        self._init()
        return self._reason

    def device_count(self) -> int:
        return len(self._handles) if self._init() is not None else 0

    def driver_version(self) -> str | None:
        nv = self._init()
        if nv is None:
            return None
        value = self._call("nvmlSystemGetDriverVersion")
        return None if value is None else _text(value)

    def cuda_driver_version(self) -> str | None:
        """Newest CUDA version the driver supports, e.g. "12.4"."""
        nv = self._init()
        if nv is None:
            return None
        value = self._call("nvmlSystemGetCudaDriverVersion_v2")
        if value is None:
            value = self._call("nvmlSystemGetCudaDriverVersion")
        return None if value is None else _cuda_version(int(value))

    # --- devices -------------------------------------------------------------

    def _metrics(self, nv: Any, handle: Any) -> dict[str, Any]:
        """The cheap, per-second figures of one device, each guarded on its own."""
        memory = self._call("nvmlDeviceGetMemoryInfo", handle)
        rates = self._call("nvmlDeviceGetUtilizationRates", handle)
        power = self._call("nvmlDeviceGetPowerUsage", handle)
        sm_clock = self._call("nvmlDeviceGetClockInfo", handle, getattr(nv, "NVML_CLOCK_SM", 1))
        mem_clock = self._call("nvmlDeviceGetClockInfo", handle, getattr(nv, "NVML_CLOCK_MEM", 2))
        return {
            "utilization_gpu_percent": None if rates is None else int(rates.gpu),
            "utilization_memory_percent": None if rates is None else int(rates.memory),
            "memory_total_bytes": None if memory is None else int(memory.total),
            "memory_used_bytes": None if memory is None else int(memory.used),
            "temperature_c": self._call(
                "nvmlDeviceGetTemperature", handle, getattr(nv, "NVML_TEMPERATURE_GPU", 0)
            ),
            "power_watts": None if power is None else power / 1000.0,
            "clocks_sm_mhz": sm_clock,
            "clocks_mem_mhz": mem_clock,
        }

    def _uuid(self, nv: Any, handle: Any) -> str | None:
        value = self._call("nvmlDeviceGetUUID", handle)
        return None if value is None else _text(value)

    def _mig_devices(self, nv: Any, handle: Any) -> list[dict[str, Any]]:
        count = self._call("nvmlDeviceGetMaxMigDeviceCount", handle) or 0
        result = []
        for slot in range(count):
            mig = self._call("nvmlDeviceGetMigDeviceHandleByIndex", handle, slot)
            if mig is None:  # empty slot (NVML_ERROR_NOT_FOUND)
                continue
            memory = self._call("nvmlDeviceGetMemoryInfo", mig)
            name = self._call("nvmlDeviceGetName", mig)
            result.append(
                {
                    "index": slot,
                    "uuid": self._uuid(nv, mig),
                    "name": None if name is None else _text(name),
                    "memory_total_bytes": None if memory is None else int(memory.total),
                    "memory_used_bytes": None if memory is None else int(memory.used),
                }
            )
        return result

    def _device(self, nv: Any, index: int, handle: Any) -> dict[str, Any]:
        name = self._call("nvmlDeviceGetName", handle)
        pci = self._call("nvmlDeviceGetPciInfo", handle)
        capability = self._call("nvmlDeviceGetCudaComputeCapability", handle)
        power_limit = self._call("nvmlDeviceGetEnforcedPowerLimit", handle)
        modes = self._call("nvmlDeviceGetMigMode", handle)
        mig_mode = None if modes is None else bool(modes[0] == 1)
        device: dict[str, Any] = {
            "index": index,
            "name": None if name is None else _text(name),
            "uuid": self._uuid(nv, handle),
            "pci_bus_id": None if pci is None else _text(pci.busId),
            "compute_capability": (
                None if capability is None else f"{capability[0]}.{capability[1]}"
            ),
            **self._metrics(nv, handle),
            "power_limit_watts": None if power_limit is None else power_limit / 1000.0,
            "mig_mode": mig_mode,
            "mig_devices": self._mig_devices(nv, handle) if mig_mode else [],
        }
        return device

    def devices(self) -> list[dict[str, Any]]:
        """Every physical GPU, in NVML (PCI bus) order; [] without a driver."""
        nv = self._init()
        if nv is None:
            return []
        devices = [self._device(nv, i, h) for i, h in enumerate(self._handles)]
        physical, mig = map_visible_indices(
            os.environ.get("CUDA_VISIBLE_DEVICES"),
            [(d["uuid"], [m["uuid"] for m in d["mig_devices"]]) for d in devices],
        )
        for device, visible, mig_visible in zip(devices, physical, mig, strict=True):
            device["visible_index"] = visible
            for mig_device, index in zip(device["mig_devices"], mig_visible, strict=True):
                mig_device["visible_index"] = index
        return devices

    def sample(self) -> list[dict[str, Any]]:
        """Cheap per-device metrics for a periodic sampler; [] without a driver."""
        nv = self._init()
        if nv is None:
            return []
        return [
            {"index": i, "uuid": self._uuid(nv, h), **self._metrics(nv, h)}
            for i, h in enumerate(self._handles)
        ]

    def processes(self) -> list[dict[str, Any]]:
        """GPU memory per process: ``{"gpu", "pid", "used_bytes"}``; [] without a driver.

        Compute and graphics processes are both listed; a process on two GPUs appears
        once per GPU. ``used_bytes`` is None where the driver does not say (some vGPU
        and MIG set-ups).
        """
        nv = self._init()
        if nv is None:
            return []
        found: dict[tuple[int, int], dict[str, Any]] = {}
        for index, handle in enumerate(self._handles):
            for name in ("nvmlDeviceGetComputeRunningProcesses",
                         "nvmlDeviceGetGraphicsRunningProcesses"):
                for proc in self._call(name, handle) or []:
                    pid = getattr(proc, "pid", None)
                    if pid is None:
                        continue
                    used = getattr(proc, "usedGpuMemory", None)
                    found.setdefault((index, int(pid)), {
                        "gpu": index, "pid": int(pid),
                        "used_bytes": int(used) if isinstance(used, int) else None,
                    })
        return list(found.values())


nvml = Nvml()
