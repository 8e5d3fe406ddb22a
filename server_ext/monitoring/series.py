"""Metric names, their units, and the flattening of a sample into labelled series.

One vocabulary serves the history, the alert rules, ``GET monitoring/metrics`` and the
Prometheus exposition: a series is a metric name plus labels (``gpu_temperature_celsius``
with ``{"gpu": "0"}``). Values are in the units the name says (percent 0-100, bytes,
seconds); ``prometheus.py`` maps them to Prometheus names in base units (ratios 0-1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]


@dataclass(frozen=True)
class MetricInfo:
    """A metric of the sampler (or of the job watcher)."""

    name: str
    unit: str
    help: str
    #: Prometheus gauge name and the factor that turns the value into base units
    prometheus: str | None = None
    scale: float = 1.0
    #: kept in the persisted (downsampled) history; per-core figures are not
    persisted: bool = True


def _m(name: str, unit: str, help_: str, prometheus: str | None = None, scale: float = 1.0,
       persisted: bool = True) -> MetricInfo:
    return MetricInfo(name, unit, help_, prometheus, scale, persisted)


CATALOG: dict[str, MetricInfo] = {m.name: m for m in (
    _m("cpu_percent", "percent", "CPU busy time of the machine, all cores",
       "notebench_cpu_usage_ratio", 0.01),
    _m("cpu_core_percent", "percent", "CPU busy time per core",
       "notebench_cpu_core_usage_ratio", 0.01, persisted=False),
    _m("load1", "", "Load average over 1 minute", "notebench_load1"),
    _m("load5", "", "Load average over 5 minutes", "notebench_load5"),
    _m("load15", "", "Load average over 15 minutes", "notebench_load15"),
    _m("memory_used_bytes", "bytes", "Memory in use (cgroup-aware: the limit minus what is "
       "available)", "notebench_memory_used_bytes"),
    _m("memory_available_bytes", "bytes", "Memory available (cgroup-aware)",
       "notebench_memory_available_bytes"),
    _m("memory_total_bytes", "bytes", "Memory usable (the cgroup limit when lower than RAM)",
       "notebench_memory_total_bytes"),
    _m("memory_percent", "percent", "Memory in use, share of the usable total",
       "notebench_memory_usage_ratio", 0.01),
    _m("swap_used_bytes", "bytes", "Swap in use", "notebench_swap_used_bytes"),
    _m("swap_percent", "percent", "Swap in use, share of the total",
       "notebench_swap_usage_ratio", 0.01),
    _m("network_rx_bytes_per_second", "bytes/s", "Bytes received per second (all interfaces "
       "but loopback)"),
    _m("network_tx_bytes_per_second", "bytes/s", "Bytes sent per second (all interfaces but "
       "loopback)"),
    _m("disk_read_bytes_per_second", "bytes/s", "Bytes read from disks per second"),
    _m("disk_write_bytes_per_second", "bytes/s", "Bytes written to disks per second"),
    _m("storage_free_bytes", "bytes", "Free space of the file system of a root",
       "notebench_storage_free_bytes"),
    _m("storage_total_bytes", "bytes", "Size of the file system of a root",
       "notebench_storage_size_bytes"),
    _m("storage_free_percent", "percent", "Free space of the file system of a root, share",
       "notebench_storage_free_ratio", 0.01),
    _m("gpu_utilization_percent", "percent", "GPU busy time", "notebench_gpu_utilization_ratio",
       0.01),
    _m("gpu_memory_used_bytes", "bytes", "GPU memory in use", "notebench_gpu_memory_used_bytes"),
    _m("gpu_memory_total_bytes", "bytes", "GPU memory", "notebench_gpu_memory_total_bytes"),
    _m("gpu_memory_percent", "percent", "GPU memory in use, share",
       "notebench_gpu_memory_usage_ratio", 0.01),
    _m("gpu_temperature_celsius", "celsius", "GPU temperature",
       "notebench_gpu_temperature_celsius"),
    _m("gpu_power_watts", "watts", "GPU power draw", "notebench_gpu_power_watts"),
    _m("gpu_sm_clock_mhz", "MHz", "GPU SM clock", "notebench_gpu_sm_clock_hertz", 1e6),
    _m("mig_memory_used_bytes", "bytes", "Memory in use of a MIG device",
       "notebench_mig_memory_used_bytes"),
    _m("job_cpu_percent", "percent", "CPU of a job's processes (100 = one core)",
       "notebench_job_cpu_usage_ratio", 0.01),
    _m("job_rss_bytes", "bytes", "Resident memory of a job's processes",
       "notebench_job_resident_memory_bytes"),
    _m("job_pss_bytes", "bytes", "Proportional set size of a job's processes (sampled "
       "every pss_interval)", "notebench_job_proportional_memory_bytes"),
    _m("job_gpu_memory_bytes", "bytes", "GPU memory of a job's processes",
       "notebench_job_gpu_memory_bytes"),
    _m("job_processes", "", "Live processes of a job", "notebench_job_processes"),
    _m("job_seconds_since_metric", "seconds", "Active seconds (paused time excluded) since a "
       "running job's last metric", "notebench_job_seconds_since_metric"),
    _m("job_failed", "", "1 for a job that failed recently", "notebench_job_failed",
       persisted=False),
    _m("job_loss_nonfinite", "", "1 when a job's latest loss value is NaN or infinite",
       "notebench_job_loss_nonfinite", persisted=False),
    _m("sampler_cpu_seconds", "seconds", "CPU time the sampler spent on one sample"),
)}


def labels_of(mapping: Mapping[str, Any] | None) -> Labels:
    """Labels as a sorted tuple of string pairs (hashable, one order)."""
    if not mapping:
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items()))


def key_text(name: str, labels: Labels) -> str:
    """``name{a="1",b="x"}``: the one text form of a series."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return f"{name}{{{inner}}}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def flatten(sample: Mapping[str, Any]) -> dict[SeriesKey, float]:
    """Every figure of a sample as ``{(name, labels): value}`` (missing figures left out)."""
    out: dict[SeriesKey, float] = {}

    def put(name: str, value: Any, labels: Labels = ()) -> None:
        number = _number(value)
        if number is not None:
            out[(name, labels)] = number

    cpu = sample.get("cpu") or {}
    put("cpu_percent", cpu.get("percent"))
    for index, value in enumerate(cpu.get("per_core") or []):
        put("cpu_core_percent", value, (("core", str(index)),))
    for name, value in zip(("load1", "load5", "load15"), cpu.get("load") or (), strict=False):
        put(name, value)
    memory = sample.get("memory") or {}
    for field in ("used_bytes", "available_bytes", "total_bytes", "percent"):
        put(f"memory_{field}", memory.get(field))
    swap = sample.get("swap") or {}
    put("swap_used_bytes", swap.get("used_bytes"))
    put("swap_percent", swap.get("percent"))
    network = sample.get("network") or {}
    put("network_rx_bytes_per_second", network.get("rx_bytes_per_second"))
    put("network_tx_bytes_per_second", network.get("tx_bytes_per_second"))
    disk = sample.get("disk_io") or {}
    put("disk_read_bytes_per_second", disk.get("read_bytes_per_second"))
    put("disk_write_bytes_per_second", disk.get("write_bytes_per_second"))
    for root in sample.get("storage") or []:
        labels = (("root", str(root.get("root"))),)
        put("storage_free_bytes", root.get("free_bytes"), labels)
        put("storage_total_bytes", root.get("total_bytes"), labels)
        put("storage_free_percent", root.get("free_percent"), labels)
    for gpu in sample.get("gpus") or []:
        labels = (("gpu", str(gpu.get("index"))),)
        put("gpu_utilization_percent", gpu.get("utilization_percent"), labels)
        put("gpu_memory_used_bytes", gpu.get("memory_used_bytes"), labels)
        put("gpu_memory_total_bytes", gpu.get("memory_total_bytes"), labels)
        put("gpu_memory_percent", gpu.get("memory_percent"), labels)
        put("gpu_temperature_celsius", gpu.get("temperature_c"), labels)
        put("gpu_power_watts", gpu.get("power_watts"), labels)
        put("gpu_sm_clock_mhz", gpu.get("clock_sm_mhz"), labels)
        for mig in gpu.get("mig_devices") or []:
            put("mig_memory_used_bytes", mig.get("memory_used_bytes"),
                (("gpu", str(gpu.get("index"))), ("mig", str(mig.get("index")))))
    for job_id, usage in (sample.get("jobs") or {}).items():
        labels = (("job_id", str(job_id)),)
        put("job_cpu_percent", usage.get("cpu_percent"), labels)
        put("job_rss_bytes", usage.get("rss_bytes"), labels)
        put("job_pss_bytes", usage.get("pss_bytes"), labels)
        put("job_gpu_memory_bytes", usage.get("gpu_memory_bytes"), labels)
        put("job_processes", usage.get("processes"), labels)
    put("sampler_cpu_seconds", (sample.get("cost") or {}).get("cpu_seconds"))
    return out


def unit_of(name: str) -> str:
    info = CATALOG.get(name)
    return info.unit if info is not None else ""


def names_matching(patterns: Iterable[str], names: Iterable[str]) -> list[str]:
    """Names matching any of the shell-style ``patterns`` (``gpu_*``), in name order."""
    from fnmatch import fnmatchcase

    wanted = list(patterns)
    return sorted(n for n in set(names) if any(fnmatchcase(n, p) for p in wanted))
