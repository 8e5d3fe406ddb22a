"""Container limits from the Linux control groups (v1 and v2), read without raising.

The process's own cgroup is resolved from ``/proc/self/cgroup``; limits set on any
ancestor up to the mount root also apply, so the smallest limit along that chain wins.
A path that does not exist under the mount (a container without a cgroup namespace)
falls back to the mount root, which is then the container's own cgroup.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

# Kernels write "unlimited" as a number close to 2**63 (rounded down to a page).
_UNLIMITED = 2**62

CgroupVersion = Literal["v1", "v2"]


@dataclass(frozen=True)
class CgroupLimits:
    """What the cgroup allows this process; ``None`` means no limit or unknown."""

    version: CgroupVersion | None = None
    memory_limit_bytes: int | None = None
    cpu_quota_cores: float | None = None
    memory_usage_bytes: int | None = None
    # page cache the kernel reclaims before an OOM kill (part of memory_usage_bytes)
    memory_inactive_file_bytes: int | None = None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, ValueError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _limit(value: int | None) -> int | None:
    """A byte limit, or None where the value means unlimited or is invalid."""
    if value is None or value <= 0 or value >= _UNLIMITED:
        return None
    return value


def _stat_field(path: Path, key: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _self_paths(self_cgroup: Path) -> dict[str, str]:
    """Controller name -> cgroup path; the v2 unified entry is under the key ``""``."""
    paths: dict[str, str] = {}
    text = _read(self_cgroup)
    if text is None:
        return paths
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            paths[""] = path
        for name in controllers.split(","):
            if name:
                paths[name] = path
    return paths


def _chain(mount: Path, path: str | None) -> list[Path]:
    """Directories from the process's cgroup up to ``mount`` (deepest first)."""
    if path:
        own = mount / path.strip("/")
        if own != mount and own.is_dir():
            chain = [own]
            parent = own.parent
            while parent != mount and mount in parent.parents:
                chain.append(parent)
                parent = parent.parent
            chain.append(mount)
            return chain
    return [mount]


def _min(values: Iterator[float | int | None]) -> float | int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _first(values: Iterator[int | None]) -> int | None:
    return next((v for v in values if v is not None), None)


def _v2_cpu(directory: Path) -> float | None:
    text = _read(directory / "cpu.max")
    if text is None:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max":
        return None
    try:
        cores = int(quota) / int(period or "100000")
    except (ValueError, ZeroDivisionError):
        return None
    return cores if cores > 0 else None


def _v1_cpu(directory: Path) -> float | None:
    quota = _read_int(directory / "cpu.cfs_quota_us")
    period = _read_int(directory / "cpu.cfs_period_us")
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return quota / period


def _read_v2(root: Path, self_paths: dict[str, str]) -> CgroupLimits:
    chain = _chain(root, self_paths.get(""))
    return CgroupLimits(
        version="v2",
        memory_limit_bytes=_min(_limit(_read_int(d / "memory.max")) for d in chain),
        cpu_quota_cores=_min(_v2_cpu(d) for d in chain),
        memory_usage_bytes=_first(_read_int(d / "memory.current") for d in chain),
        memory_inactive_file_bytes=_first(
            _stat_field(d / "memory.stat", "inactive_file") for d in chain
        ),
    )


def _v1_mount(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _read_v1(root: Path, self_paths: dict[str, str]) -> CgroupLimits:
    memory_limit = usage = inactive = cpu = None
    memory = _v1_mount(root, ("memory",))
    if memory is not None:
        chain = _chain(memory, self_paths.get("memory"))
        memory_limit = _min(_limit(_read_int(d / "memory.limit_in_bytes")) for d in chain)
        usage = _first(_read_int(d / "memory.usage_in_bytes") for d in chain)
        inactive = _first(_stat_field(d / "memory.stat", "total_inactive_file") for d in chain)
    cpu_mount = _v1_mount(root, ("cpu", "cpu,cpuacct", "cpuacct,cpu"))
    if cpu_mount is not None:
        chain = _chain(cpu_mount, self_paths.get("cpu"))
        cpu = _min(_v1_cpu(d) for d in chain)
    return CgroupLimits(
        version="v1",
        memory_limit_bytes=memory_limit,
        cpu_quota_cores=cpu,
        memory_usage_bytes=usage,
        memory_inactive_file_bytes=inactive,
    )


def read_cgroup_limits(
    root: Path = Path("/sys/fs/cgroup"),
    self_cgroup: Path = Path("/proc/self/cgroup"),
) -> CgroupLimits:
    """Memory and CPU limits of this process's cgroup; never raises."""
    try:
        root = Path(root)
        self_paths = _self_paths(Path(self_cgroup))
        if (root / "cgroup.controllers").is_file():
            return _read_v2(root, self_paths)
        if (root / "memory").is_dir() or _v1_mount(root, ("cpu", "cpu,cpuacct")) is not None:
            return _read_v1(root, self_paths)
    except OSError:
        pass
    return CgroupLimits()
