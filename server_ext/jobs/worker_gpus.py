"""A Dask worker's GPUs, and which of its running jobs holds each.

Dask's ``GPU`` resource only counts: a worker started with ``--resources GPU=2`` runs two
one-GPU tasks at once without saying which device each gets. The job's task takes that
many devices of its worker here and pins them by UUID in the runner's
``CUDA_VISIBLE_DEVICES``, as the local executor pins the server's GPUs.

The devices a worker hands out are NVML's (by PCI bus order), limited to the worker's
own ``CUDA_VISIBLE_DEVICES`` when it has one (a worker per GPU, as dask-cuda starts
them); without NVML, the entries of the worker's ``CUDA_VISIBLE_DEVICES`` as given.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from notebench.hardware.nvml import Nvml, map_visible_indices, nvml

VISIBLE = "CUDA_VISIBLE_DEVICES"


class GpuShortage(RuntimeError):
    """The worker advertises more ``GPU`` units than it has free devices."""


def worker_gpus(environ: Mapping[str, str], driver: Nvml = nvml) -> list[str]:
    """The GPUs this worker may hand to its jobs: UUIDs, in PCI bus order."""
    visible = environ.get(VISIBLE)
    devices = driver.devices()
    if devices:
        physical, _mig = map_visible_indices(
            visible, [(d["uuid"], [m["uuid"] for m in d["mig_devices"]]) for d in devices])
        return [d["uuid"] for d, index in zip(devices, physical, strict=True)
                if index is not None and d["uuid"]]
    entries = [entry.strip() for entry in (visible or "").split(",")]
    named: list[str] = []
    for entry in entries:
        if not entry or entry == "-1":
            break  # CUDA stops at the first entry that names nothing
        named.append(entry)
    return named


class GpuLeases:
    """Which job holds which of this worker process's GPUs (tasks run in its threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # device -> job id

    def take(self, job_id: str, count: int, devices: list[str]) -> list[str]:
        """``count`` free devices for ``job_id``; ``GpuShortage`` when too few are free."""
        if count <= 0:
            return []
        with self._lock:
            free = [d for d in devices if d not in self._held]
            if len(free) < count:
                raise GpuShortage(
                    f"the job asks for {count} GPUs, and this worker has {len(free)} free "
                    f"of {len(devices)} (it advertises more GPU units than its devices)")
            chosen = free[:count]
            for device in chosen:
                self._held[device] = job_id
            return chosen

    def give_back(self, job_id: str) -> None:
        with self._lock:
            for device in [d for d, holder in self._held.items() if holder == job_id]:
                del self._held[device]

    def held(self) -> dict[str, str]:
        with self._lock:
            return dict(self._held)


#: the leases of this worker process
LEASES = GpuLeases()
