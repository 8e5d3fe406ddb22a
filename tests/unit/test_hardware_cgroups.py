"""cgroup limits read from fixture trees shaped like /sys/fs/cgroup and /proc/self/cgroup."""

from __future__ import annotations

from pathlib import Path

import pytest

from notebench.hardware.cgroups import CgroupLimits, read_cgroup_limits

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cgroup"


def read(case: str) -> CgroupLimits:
    base = FIXTURES / case
    return read_cgroup_limits(base / "sys/fs/cgroup", base / "proc/self/cgroup")


def test_v2_own_cgroup_and_smallest_ancestor_limit() -> None:
    limits = read("v2")
    assert limits.version == "v2"
    assert limits.memory_limit_bytes == 4 * 1024**3  # pod 4 GiB beats parent 8 GiB
    assert limits.cpu_quota_cores == 2.0  # "200000 100000"; parent says "max"
    assert limits.memory_usage_bytes == 1024**3
    assert limits.memory_inactive_file_bytes == 256 * 1024**2


def test_v2_unlimited_falls_back_to_root_when_own_path_is_missing() -> None:
    limits = read("v2_unlimited")  # "0::/docker/0123abcd" does not exist under the root
    assert limits == CgroupLimits(version="v2", memory_usage_bytes=123456789)


def test_v1_per_controller_paths_and_cpu_cpuacct_mount() -> None:
    limits = read("v1")
    assert limits.version == "v1"
    assert limits.memory_limit_bytes == 2 * 1024**3  # root says ~2**63: unlimited
    assert limits.memory_usage_bytes == 512 * 1024**2  # the job's, not the root's
    assert limits.memory_inactive_file_bytes == 128 * 1024**2
    assert limits.cpu_quota_cores == pytest.approx(1.5)


def test_v1_unlimited_without_proc_self_cgroup() -> None:
    limits = read("v1_unlimited")  # this case has no proc/self/cgroup file
    assert limits.version == "v1"
    assert limits.memory_limit_bytes is None
    assert limits.cpu_quota_cores is None
    assert limits.memory_usage_bytes == 1806241792


def test_missing_tree_gives_nothing(tmp_path: Path) -> None:
    assert read_cgroup_limits(tmp_path / "absent", tmp_path / "absent") == CgroupLimits()


@pytest.mark.parametrize(
    ("memory_max", "cpu_max", "memory", "cpu"),
    [
        ("garbage", "nonsense", None, None),
        ("", "200000", None, 2.0),  # period defaults to 100000
        ("0", "100000 0", None, None),
        (str(2**63 - 4096), "max", None, None),
        ("1048576", "50000 100000", 1048576, 0.5),
    ],
)
def test_v2_odd_values_never_raise(
    tmp_path: Path, memory_max: str, cpu_max: str, memory: int | None, cpu: float | None
) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    (tmp_path / "memory.max").write_text(memory_max)
    (tmp_path / "cpu.max").write_text(cpu_max)
    self_cgroup = tmp_path / "self"
    self_cgroup.write_text("not a cgroup line\n")
    limits = read_cgroup_limits(tmp_path, self_cgroup)
    assert (limits.memory_limit_bytes, limits.cpu_quota_cores) == (memory, cpu)
    assert limits.memory_usage_bytes is None


def test_this_machine_does_not_raise() -> None:
    limits = read_cgroup_limits()
    assert limits.version in ("v1", "v2", None)
