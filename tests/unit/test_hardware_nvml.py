"""The NVML wrapper: the real no-driver path here, and a fake pynvml with 2 GPUs and MIG."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from notebench.hardware.nvml import Nvml, map_visible_indices, nvml

GIB = 1024**3
UUID0 = "GPU-aaaaaaaa-0000-0000-0000-000000000000"
UUID1 = "GPU-bbbbbbbb-1111-1111-1111-111111111111"
MIG0 = "MIG-11111111-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
MIG2 = "MIG-22222222-aaaa-aaaa-aaaa-aaaaaaaaaaaa"


class FakeNVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


NOT_SUPPORTED, NOT_FOUND, LIBRARY_NOT_FOUND = 3, 6, 12


def fake_pynvml(*, init_error: int | None = None) -> Any:
    """Two GPUs: 0 is an A100 in MIG mode (slots 0 and 2 used), 1 a V100 lacking power and
    temperature readings."""
    gpus = [
        {
            "name": b"NVIDIA A100-SXM4-40GB",  # old pynvml returned bytes
            "uuid": UUID0,
            "bus": "00000000:07:00.0",
            "cc": (8, 0),
            "memory": (40 * GIB, 1 * GIB),
            "mig": {0: (MIG0, 10 * GIB), 2: (MIG2, 20 * GIB)},
        },
        {
            "name": "Tesla V100-SXM2-16GB",
            "uuid": UUID1,
            "bus": "00000000:0A:00.0",
            "cc": (7, 0),
            "memory": (16 * GIB, 2 * GIB),
            "mig": None,
        },
    ]
    calls: list[str] = []

    def gpu(handle: Any) -> dict[str, Any]:
        return handle["gpu"]

    def not_supported(*_: Any) -> Any:
        raise FakeNVMLError(NOT_SUPPORTED)

    def init() -> None:
        calls.append("init")
        if init_error is not None:
            raise FakeNVMLError(init_error)

    def memory_info(handle: Any) -> Any:
        if "mig" in handle:
            return SimpleNamespace(total=handle["mig"][1], used=GIB // 2, free=0)
        total, used = gpu(handle)["memory"]
        return SimpleNamespace(total=total, used=used, free=total - used)

    def mig_mode(handle: Any) -> list[int]:
        if gpu(handle)["mig"] is None:
            raise FakeNVMLError(NOT_SUPPORTED)  # V100 has no MIG
        return [1, 1]

    def mig_handle(handle: Any, slot: int) -> Any:
        migs = gpu(handle)["mig"]
        if slot not in migs:
            raise FakeNVMLError(NOT_FOUND)
        return {"gpu": gpu(handle), "mig": migs[slot]}

    def uuid(handle: Any) -> str:
        return handle["mig"][0] if "mig" in handle else gpu(handle)["uuid"]

    def name(handle: Any) -> Any:
        return "MIG 2g.10gb" if "mig" in handle else gpu(handle)["name"]

    def power(handle: Any) -> int:
        if gpu(handle) is gpus[1]:
            raise FakeNVMLError(NOT_SUPPORTED)
        return 250_000

    def temperature(handle: Any, sensor: int) -> int:
        if gpu(handle) is gpus[1]:
            raise FakeNVMLError(NOT_SUPPORTED)
        return 41

    return SimpleNamespace(
        calls=calls,
        NVMLError=FakeNVMLError,
        NVML_ERROR_LIBRARY_NOT_FOUND=LIBRARY_NOT_FOUND,
        NVML_CLOCK_SM=1,
        NVML_CLOCK_MEM=2,
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=init,
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetCount=lambda: len(gpus),
        nvmlDeviceGetHandleByIndex=lambda i: {"gpu": gpus[i]},
        nvmlSystemGetDriverVersion=lambda: "550.54.15",
        nvmlSystemGetCudaDriverVersion_v2=not_supported,
        nvmlSystemGetCudaDriverVersion=lambda: 12040,
        nvmlDeviceGetName=name,
        nvmlDeviceGetUUID=uuid,
        nvmlDeviceGetPciInfo=lambda h: SimpleNamespace(busId=gpu(h)["bus"].encode()),
        nvmlDeviceGetCudaComputeCapability=lambda h: gpu(h)["cc"],
        nvmlDeviceGetMemoryInfo=memory_info,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=87, memory=40),
        nvmlDeviceGetTemperature=temperature,
        nvmlDeviceGetPowerUsage=power,
        nvmlDeviceGetEnforcedPowerLimit=lambda h: 400_000,
        nvmlDeviceGetClockInfo=lambda h, kind: 1410 if kind == 1 else 1215,
        nvmlDeviceGetMigMode=mig_mode,
        nvmlDeviceGetMaxMigDeviceCount=lambda h: 7,
        nvmlDeviceGetMigDeviceHandleByIndex=mig_handle,
        nvmlDeviceGetComputeRunningProcesses=lambda h: (
            [SimpleNamespace(pid=4242, usedGpuMemory=3 * GIB)] if gpu(h) is gpus[0] else []),
        nvmlDeviceGetGraphicsRunningProcesses=lambda h: (
            [SimpleNamespace(pid=4242, usedGpuMemory=3 * GIB),
             SimpleNamespace(pid=77, usedGpuMemory=None)] if gpu(h) is gpus[0]
            else not_supported()),
        # nvmlDeviceGetFoo missing entirely must not matter either
    )


def test_real_no_driver_path_is_fast_and_quiet() -> None:
    start = time.perf_counter()
    probe = Nvml()
    assert probe.devices() == []
    assert probe.sample() == []
    assert probe.available() is False
    assert probe.reason()
    assert probe.driver_version() is None
    assert probe.cuda_driver_version() is None
    probe.shutdown()
    assert time.perf_counter() - start < 2
    assert isinstance(nvml, Nvml)


def test_processes_lists_gpu_memory_per_pid() -> None:
    probe = Nvml(module=fake_pynvml())
    procs = sorted(probe.processes(), key=lambda p: p["pid"])
    assert procs == [{"gpu": 0, "pid": 77, "used_bytes": None},
                     {"gpu": 0, "pid": 4242, "used_bytes": 3 * GIB}]
    assert Nvml().processes() == []  # this machine: no driver


def test_missing_pynvml_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    probe = Nvml()
    assert probe.devices() == []
    assert "pynvml" in (probe.reason() or "")


def test_init_failure_is_remembered() -> None:
    fake = fake_pynvml(init_error=LIBRARY_NOT_FOUND)
    probe = Nvml(module=fake)
    assert probe.available() is False
    assert probe.reason() == "NVIDIA driver not found (NVML library not found)"
    assert probe.devices() == []
    assert fake.calls == ["init"]  # not retried on every call


def test_two_gpus_with_mig_and_unsupported_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    probe = Nvml(module=fake_pynvml())
    assert probe.available() is True
    assert probe.reason() is None
    assert probe.driver_version() == "550.54.15"
    assert probe.cuda_driver_version() == "12.4"
    a100, v100 = probe.devices()
    assert a100["name"] == "NVIDIA A100-SXM4-40GB"
    assert a100["pci_bus_id"] == "00000000:07:00.0"
    assert a100["compute_capability"] == "8.0"
    assert a100["memory_total_bytes"] == 40 * GIB
    assert a100["power_watts"] == 250.0
    assert a100["power_limit_watts"] == 400.0
    assert a100["temperature_c"] == 41
    assert (a100["clocks_sm_mhz"], a100["clocks_mem_mhz"]) == (1410, 1215)
    assert a100["mig_mode"] is True
    assert [(m["index"], m["uuid"]) for m in a100["mig_devices"]] == [(0, MIG0), (2, MIG2)]
    assert a100["mig_devices"][1]["memory_total_bytes"] == 20 * GIB
    assert a100["mig_devices"][0]["name"] == "MIG 2g.10gb"
    # NotSupported on two metrics loses only those two
    assert v100["power_watts"] is None and v100["temperature_c"] is None
    assert v100["utilization_gpu_percent"] == 87
    assert v100["memory_used_bytes"] == 2 * GIB
    assert v100["mig_mode"] is None and v100["mig_devices"] == []
    assert (a100["visible_index"], v100["visible_index"]) == (0, 1)
    samples = probe.sample()
    assert [s["uuid"] for s in samples] == [UUID0, UUID1]
    assert samples[1]["power_watts"] is None and samples[1]["clocks_sm_mhz"] == 1410
    assert set(samples[0]) == {
        "index",
        "uuid",
        "utilization_gpu_percent",
        "utilization_memory_percent",
        "memory_total_bytes",
        "memory_used_bytes",
        "temperature_c",
        "power_watts",
        "clocks_sm_mhz",
        "clocks_mem_mhz",
    }


@pytest.mark.parametrize(
    ("cvd", "a100", "v100"),
    [
        ("1", None, 0),
        ("1,0", 1, 0),
        ("0, 1", 0, 1),
        ("", None, None),
        ("-1", None, None),
        ("0,-1,1", 0, None),  # CUDA stops at the first invalid entry
        ("7,0", None, None),
        (UUID1, None, 0),
        ("GPU-bbbb", None, 0),  # a unique uuid prefix is enough
        ("GPU-,0", None, None),  # ambiguous prefix stops parsing
        (f"{UUID1},{UUID0}", 1, 0),
        (MIG2, 0, None),
        (f"1,{MIG0}", 1, 0),
    ],
)
def test_cuda_visible_devices_mapping(
    monkeypatch: pytest.MonkeyPatch, cvd: str, a100: int | None, v100: int | None
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", cvd)
    devices = Nvml(module=fake_pynvml()).devices()
    assert [d["visible_index"] for d in devices] == [a100, v100]


def test_mig_devices_get_their_own_visible_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{MIG2},1")
    a100, v100 = Nvml(module=fake_pynvml()).devices()
    assert [m["visible_index"] for m in a100["mig_devices"]] == [None, 0]
    assert (a100["visible_index"], v100["visible_index"]) == (0, 1)


def test_map_visible_indices_unset_means_all() -> None:
    physical, mig = map_visible_indices(None, [("GPU-a", []), ("GPU-b", ["MIG-x"])])
    assert physical == [0, 1]
    assert mig == [[], [None]]


def test_shutdown_then_reinitialise() -> None:
    fake = fake_pynvml()
    probe = Nvml(module=fake)
    assert probe.available()
    probe.shutdown()
    assert probe.available()
    assert fake.calls == ["init", "shutdown", "init"]
