"""CPU, memory and storage facts, with container (cgroup) limits taken into account."""

from __future__ import annotations

import math
import os
import platform
import shutil
from pathlib import Path
from typing import Any

import psutil

from .cgroups import CgroupLimits, read_cgroup_limits

CPUINFO = Path("/proc/cpuinfo")
MOUNTS = Path("/proc/mounts")

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")

# File systems whose locking and shared memory SQLite's WAL mode cannot rely on.
NETWORK_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "9p",
        "ceph",
        "lustre",
        "gpfs",
        "glusterfs",
        "beegfs",
        "panfs",
        "orangefs",
        "pvfs2",
        "ocfs2",
        "gfs2",
        "fuse.sshfs",
        "fuse.ceph",
        "fuse.ceph-fuse",
        "fuse.glusterfs",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.rclone",
        "fuse.juicefs",
        "fuse.goofys",
        "fuse.mountpoint-s3",
        "fuse.blobfuse",
        "fuse.blobfuse2",
    }
)


def _cpuinfo_fields(cpuinfo_file: Path) -> tuple[str | None, set[str]]:
    """The CPU model and the flags of the first processor in /proc/cpuinfo."""
    try:
        text = Path(cpuinfo_file).read_text(errors="replace")
    except OSError:
        return None, set()
    model: str | None = None
    flags: set[str] = set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip().lower()
        if model is None and key in ("model name", "hardware", "cpu model", "processor model"):
            model = value.strip() or None
        elif not flags and key in ("flags", "features"):
            flags = set(value.split())
    return model, flags


def _affinity_count() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _frequency() -> tuple[float | None, float | None]:
    try:
        freq = psutil.cpu_freq()
    except Exception:  # psutil raises on some virtual machines
        return None, None
    if freq is None:
        return None, None
    return (freq.current or None), (freq.max or None)


def effective_cores(logical: int, affinity: int | None, quota: float | None) -> int:
    """Cores this process can really use: logical CPUs capped by affinity and quota."""
    cores = [logical]
    if affinity:
        cores.append(affinity)
    if quota:
        cores.append(math.ceil(quota))
    return max(1, min(cores))


def cpu_info(
    cpuinfo_file: Path = CPUINFO,
    cgroup: CgroupLimits | None = None,
) -> dict[str, Any]:
    """CPU model, core counts, frequency, quota and instruction-set flags."""
    cgroup = cgroup if cgroup is not None else read_cgroup_limits()
    model, flags = _cpuinfo_fields(cpuinfo_file)
    logical = os.cpu_count() or 1
    affinity = _affinity_count()
    current, maximum = _frequency()
    try:
        physical = psutil.cpu_count(logical=False)
    except Exception:
        physical = None
    return {
        "model": model or platform.processor() or platform.machine() or None,
        "architecture": platform.machine() or None,
        "physical_cores": physical,
        "logical_cores": logical,
        "affinity_cores": affinity,
        "cgroup_quota_cores": cgroup.cpu_quota_cores,
        "effective_cores": effective_cores(logical, affinity, cgroup.cpu_quota_cores),
        "frequency_mhz": {"current": current, "max": maximum},
        "flags": {flag: flag in flags for flag in CPU_FLAGS},
    }


def memory_info(cgroup: CgroupLimits | None = None) -> dict[str, Any]:
    """RAM and swap, and what the cgroup leaves of them.

    With a cgroup limit, available memory is the limit minus the cgroup's usage, where
    the usage does not count reclaimable page cache (inactive file pages).
    """
    cgroup = cgroup if cgroup is not None else read_cgroup_limits()
    vm = psutil.virtual_memory()
    try:
        swap_total: int | None = psutil.swap_memory().total
    except Exception:
        swap_total = None
    limit = cgroup.memory_limit_bytes
    effective_total = vm.total if limit is None else min(vm.total, limit)
    effective_available = vm.available
    if limit is not None:
        usage = cgroup.memory_usage_bytes
        if usage is None:
            effective_available = min(vm.available, limit)
        else:
            working_set = max(0, usage - (cgroup.memory_inactive_file_bytes or 0))
            effective_available = min(vm.available, max(0, limit - working_set))
    return {
        "total_bytes": vm.total,
        "available_bytes": vm.available,
        "used_bytes": vm.used,
        "swap_total_bytes": swap_total,
        "cgroup_version": cgroup.version,
        "cgroup_limit_bytes": limit,
        "cgroup_usage_bytes": cgroup.memory_usage_bytes,
        "effective_total_bytes": effective_total,
        "effective_available_bytes": effective_available,
    }


def _unescape(field: str) -> str:
    """Undo the octal escapes of /proc/mounts (``\\040`` is a space)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        chunk = field[i + 1 : i + 4]
        if field[i] == "\\" and len(chunk) == 3 and all(c in "01234567" for c in chunk):
            out.append(chr(int(chunk, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _contains(mount_point: str, path: str) -> bool:
    if mount_point == "/":
        return path.startswith("/")
    return path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def filesystem_of(path: str | Path, mounts_file: str | Path = MOUNTS) -> dict[str, Any]:
    """The mount holding ``path``: mount_point, fs_type, device, is_network_fs.

    The longest mount point that is a prefix of the resolved path wins; of equal ones
    the last mounted (it hides the others). Values are None when the mount table
    cannot be read (not Linux).
    """
    resolved = os.path.realpath(os.fspath(path))
    best: tuple[str, str, str] | None = None
    try:
        lines = Path(mounts_file).read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        device, mount_point, fs_type = _unescape(fields[0]), _unescape(fields[1]), fields[2]
        if _contains(mount_point, resolved) and (best is None or len(mount_point) >= len(best[1])):
            best = (device, mount_point, fs_type)
    if best is None:
        return {"mount_point": None, "fs_type": None, "device": None, "is_network_fs": None}
    device, mount_point, fs_type = best
    return {
        "mount_point": mount_point,
        "fs_type": fs_type,
        "device": device,
        "is_network_fs": is_network_fs(fs_type),
    }


def is_network_fs(fs_type: str) -> bool:
    """Whether a file system type is shared over a network (or a FUSE remote)."""
    return fs_type in NETWORK_FS or fs_type.startswith(("nfs", "fuse.s3", "fuse.gcs"))


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (a workspace may not exist yet)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def storage_info(path: str | Path, mounts_file: str | Path = MOUNTS) -> dict[str, Any]:
    """Size and free space of the file system holding ``path``, and its type."""
    target = _existing(Path(path))
    try:
        usage = shutil.disk_usage(target)
        total, used, free = usage.total, usage.used, usage.free
    except OSError:
        total = used = free = None
    return {
        "path": str(Path(path).absolute()),
        "total_bytes": total,
        "free_bytes": free,
        "used_bytes": used,
        **filesystem_of(target, mounts_file),
    }
