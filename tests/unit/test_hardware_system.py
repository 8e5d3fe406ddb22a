"""CPU, memory and storage facts, with cgroup limits and a fixture mount table."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from notebench.hardware import system
from notebench.hardware.cgroups import CgroupLimits
from notebench.hardware.system import (
    cpu_info,
    effective_cores,
    filesystem_of,
    memory_info,
    storage_info,
)

GIB = 1024**3

MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw,relatime 0 0
tmpfs /dev/shm tmpfs rw 0 0
server:/export/home /home nfs4 rw,vers=4.2 0 0
/dev/sdb1 /home/alice/local ext4 rw 0 0
//nas/share /mnt/my\\040share cifs rw 0 0
user@host:/data /mnt/ssh fuse.sshfs rw 0 0
lustre@o2ib:/scratch /scratch lustre rw 0 0
overlay /mnt/layer overlay rw 0 0
tmpfs /mnt/layer tmpfs rw 0 0
"""


@pytest.fixture
def mounts(tmp_path: Path) -> Path:
    path = tmp_path / "mounts"
    path.write_text(MOUNTS)
    return path


@pytest.mark.parametrize(
    ("path", "mount_point", "fs_type", "network"),
    [
        ("/home/alice/project", "/home", "nfs4", True),
        ("/home", "/home", "nfs4", True),
        ("/home/alice/local/x.db", "/home/alice/local", "ext4", False),
        ("/home/alice/localx", "/home", "nfs4", True),  # a prefix must end at a "/"
        ("/mnt/my share/ws", "/mnt/my share", "cifs", True),
        ("/mnt/ssh/ws", "/mnt/ssh", "fuse.sshfs", True),
        ("/scratch/run1", "/scratch", "lustre", True),
        ("/mnt/layer/x", "/mnt/layer", "tmpfs", False),  # the last mount hides the first
        ("/srv/data", "/", "ext4", False),
    ],
)
def test_filesystem_of_longest_prefix(
    mounts: Path, path: str, mount_point: str, fs_type: str, network: bool
) -> None:
    found = filesystem_of(path, mounts_file=mounts)
    assert (found["mount_point"], found["fs_type"], found["is_network_fs"]) == (
        mount_point,
        fs_type,
        network,
    )


def test_filesystem_of_without_mount_table(tmp_path: Path) -> None:
    found = filesystem_of(tmp_path, mounts_file=tmp_path / "missing")
    assert found == {"mount_point": None, "fs_type": None, "device": None, "is_network_fs": None}


def test_storage_info_of_a_path_not_created_yet(tmp_path: Path) -> None:
    info = storage_info(tmp_path / "not" / "yet", mounts_file=Path("/proc/mounts"))
    assert info["path"] == str(tmp_path / "not" / "yet")
    assert info["total_bytes"] > 0
    assert 0 <= info["free_bytes"] <= info["total_bytes"]
    assert info["used_bytes"] >= 0
    assert info["mount_point"] is not None
    assert isinstance(info["is_network_fs"], bool)


def test_cpu_info_from_cpuinfo_and_quota(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Test CPU @ 3.0GHz\n"
        "flags\t\t: fpu sse avx2 avx512f amx_bf16\n\n"
        "processor\t: 1\nmodel name\t: Test CPU @ 3.0GHz\nflags\t\t: fpu\n"
    )
    info = cpu_info(cpuinfo_file=cpuinfo, cgroup=CgroupLimits(version="v2", cpu_quota_cores=1.5))
    assert info["model"] == "Test CPU @ 3.0GHz"
    assert info["flags"] == {"avx2": True, "avx512f": True, "avx512_bf16": False, "amx_bf16": True}
    assert info["cgroup_quota_cores"] == 1.5
    assert info["logical_cores"] == os.cpu_count()
    assert info["effective_cores"] == min(2, os.cpu_count() or 1, len(os.sched_getaffinity(0)))
    assert set(info["frequency_mhz"]) == {"current", "max"}


def test_cpu_info_on_this_machine() -> None:
    info = cpu_info()
    assert info["model"]
    assert 1 <= info["effective_cores"] <= info["logical_cores"]


def test_cpu_info_survives_missing_cpuinfo_and_cpu_freq(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(system.psutil, "cpu_freq", lambda: None)
    info = cpu_info(cpuinfo_file=tmp_path / "none", cgroup=CgroupLimits())
    assert info["frequency_mhz"] == {"current": None, "max": None}
    assert info["flags"]["avx2"] is False
    assert info["model"] is None or isinstance(info["model"], str)


@pytest.mark.parametrize(
    ("logical", "affinity", "quota", "expected"),
    [(2, 2, None, 2), (2, 2, 1.5, 2), (16, 4, None, 4), (16, 16, 0.5, 1), (8, None, 2.0, 2)],
)
def test_effective_cores(logical: int, affinity: int | None, quota: float | None, expected: int):
    assert effective_cores(logical, affinity, quota) == expected


def fake_memory(monkeypatch: pytest.MonkeyPatch, total: int, available: int) -> None:
    vm = SimpleNamespace(total=total, available=available, used=total - available)
    monkeypatch.setattr(system.psutil, "virtual_memory", lambda: vm)
    monkeypatch.setattr(system.psutil, "swap_memory", lambda: SimpleNamespace(total=0))


def test_memory_info_cgroup_limit_and_page_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_memory(monkeypatch, total=64 * GIB, available=60 * GIB)
    cgroup = CgroupLimits(
        version="v2",
        memory_limit_bytes=4 * GIB,
        memory_usage_bytes=3 * GIB,
        memory_inactive_file_bytes=1 * GIB,  # reclaimable: does not count against us
    )
    info = memory_info(cgroup=cgroup)
    assert info["cgroup_limit_bytes"] == 4 * GIB
    assert info["cgroup_version"] == "v2"
    assert info["effective_total_bytes"] == 4 * GIB
    assert info["effective_available_bytes"] == 2 * GIB
    assert info["total_bytes"] == 64 * GIB and info["swap_total_bytes"] == 0


def test_memory_info_without_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_memory(monkeypatch, total=8 * GIB, available=5 * GIB)
    info = memory_info(cgroup=CgroupLimits(version="v1", memory_usage_bytes=GIB))
    assert info["cgroup_limit_bytes"] is None
    assert info["effective_total_bytes"] == 8 * GIB
    assert info["effective_available_bytes"] == 5 * GIB


def test_memory_info_limit_without_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_memory(monkeypatch, total=8 * GIB, available=5 * GIB)
    info = memory_info(cgroup=CgroupLimits(version="v1", memory_limit_bytes=2 * GIB))
    assert info["effective_available_bytes"] == 2 * GIB


def test_memory_info_on_this_machine() -> None:
    info = memory_info()
    assert 0 < info["effective_available_bytes"] <= info["effective_total_bytes"]
