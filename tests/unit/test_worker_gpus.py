"""A Dask worker's GPUs and their leases to jobs: the no-driver path for real, NVML faked."""

from __future__ import annotations

import threading

import pytest

from notebench.hardware.nvml import Nvml
from notebench.server.jobs.dask_executor import task_resources
from notebench.server.jobs.worker_gpus import GpuLeases, GpuShortage, worker_gpus
from tests.unit.test_hardware_nvml import MIG0, UUID0, UUID1, fake_pynvml


@pytest.mark.parametrize(("visible", "expected"), [
    (None, []),
    ("", []),
    ("GPU-a,GPU-b", ["GPU-a", "GPU-b"]),
    (" GPU-a , GPU-b ", ["GPU-a", "GPU-b"]),
    ("GPU-a,-1,GPU-b", ["GPU-a"]),  # CUDA stops at the first entry naming nothing
])
def test_without_a_driver_the_worker_hands_out_what_its_environment_names(visible, expected):
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert worker_gpus(environ, Nvml()) == expected  # this machine: no NVIDIA driver


@pytest.mark.parametrize(("visible", "expected"), [
    (None, [UUID0, UUID1]),
    ("1", [UUID1]),
    (UUID1, [UUID1]),
    ("1,0", [UUID0, UUID1]),  # in PCI bus order
    (MIG0, [UUID0]),  # the GPU of a visible MIG device
    ("", []),
])
def test_with_nvml_the_worker_hands_out_its_visible_gpus_by_uuid(visible, expected):
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert worker_gpus(environ, Nvml(module=fake_pynvml())) == expected


def test_leases_give_each_job_its_own_devices_until_it_gives_them_back():
    leases = GpuLeases()
    devices = ["GPU-a", "GPU-b", "GPU-c"]
    first = leases.take("job-1", 2, devices)
    second = leases.take("job-2", 1, devices)
    assert first == ["GPU-a", "GPU-b"] and second == ["GPU-c"]
    with pytest.raises(GpuShortage, match="0 free of 3"):
        leases.take("job-3", 1, devices)
    assert leases.take("job-4", 0, devices) == []
    leases.give_back("job-1")
    assert leases.take("job-3", 2, devices) == ["GPU-a", "GPU-b"]
    assert leases.held() == {"GPU-a": "job-3", "GPU-b": "job-3", "GPU-c": "job-2"}


def test_concurrent_tasks_never_share_a_device():
    leases = GpuLeases()
    devices = [f"GPU-{i}" for i in range(8)]
    taken: dict[str, list[str]] = {}
    start = threading.Barrier(8)

    def task(job: str) -> None:
        start.wait()
        taken[job] = leases.take(job, 1, devices)

    threads = [threading.Thread(target=task, args=(f"job-{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(d for got in taken.values() for d in got) == sorted(devices)


def test_a_job_asks_for_cpu_units_only_where_workers_count_them():
    counting = {"w1": {"resources": {"GPU": 1, "CPU": 4}}, "w2": {"resources": {}}}
    plain = {"w1": {"resources": {"GPU": 1}}}
    assert task_resources({"gpus": 1, "cpus": 2}, counting) == {"GPU": 1.0, "CPU": 2.0}
    assert task_resources({"gpus": 1, "cpus": 2}, plain) == {"GPU": 1.0}
    assert task_resources({"gpus": 0}, counting) == {}
