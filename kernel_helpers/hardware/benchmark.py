"""Micro-benchmarks of this machine, run in their own process.

``python -m notebench.hardware.benchmark --dir DIR [--disk-mb N] [--quick]`` prints JSON
lines, flushed: ``{"type": "progress", "stage", "fraction", "message"}`` around each stage,
then ``{"type": "result", "result": {...}}``; on failure ``{"type": "error", "message"}``
and exit code 1. Units: GFLOP/s and TFLOP/s are 1e9 and 1e12 FLOP/s, GB/s is 1e9 B/s,
MB/s is 1e6 B/s. torch is imported only inside the functions.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
CHUNK = 4 * MIB


class BenchmarkError(Exception):
    """A failure worth reporting as the run's error message."""


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, default=str) + "\n")
    sys.stdout.flush()


def time_reps(fn: Callable[[], None], budget_s: float, min_reps: int = 3) -> list[float]:
    """Seconds per call of ``fn`` after one warm-up: at least ``min_reps`` calls, then
    more until ``budget_s`` is spent."""
    fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < min_reps or spent < budget_s:
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        spent += elapsed
        if len(times) >= 200:
            break
    return times


def cpu_matmul(dtype_name: str, budget_s: float, max_n: int) -> dict[str, Any]:
    """Square matmul GFLOP/s; the size doubles from 128 until one product takes ~20 ms."""
    import torch

    dtype = getattr(torch, dtype_name)
    n = 128
    while True:
        a = torch.randn(n, n).to(dtype)
        b = torch.randn(n, n).to(dtype)
        start = time.perf_counter()
        torch.mm(a, b)
        one = time.perf_counter() - start
        if one >= 0.02 or n >= max_n or one * 8 > budget_s:
            break
        n *= 2
    times = time_reps(lambda: torch.mm(a, b), budget_s)
    flops = 2.0 * n**3
    return {
        "gflops": flops / statistics.median(times) / 1e9,
        "gflops_best": flops / min(times) / 1e9,
        "n": n,
        "reps": len(times),
        "dtype": dtype_name,
    }


def cpu_bf16_support() -> str | None:
    """None when the CPU runs bf16 natively, else why the bf16 benchmark is skipped."""
    import torch

    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        native = False
    if not native:
        return "no native bf16 on this CPU (oneDNN reports no avx512_bf16/AMX)"
    return None


def memory_bandwidth(size_mib: int, budget_s: float) -> dict[str, Any]:
    """Large tensor copy; each copy reads and writes the buffer, so 2x its bytes move."""
    import torch

    src = torch.ones(size_mib * MIB // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    times = time_reps(lambda: dst.copy_(src), budget_s)
    moved = 2 * src.numel() * src.element_size()
    return {
        "gb_per_s": moved / statistics.median(times) / 1e9,
        "gb_per_s_best": moved / min(times) / 1e9,
        "buffer_bytes": src.numel() * src.element_size(),
        "reps": len(times),
    }


def disk_write(path: Path, size_mib: int) -> dict[str, Any]:
    """Write ``size_mib`` MiB in 4 MiB chunks and fsync; the time includes the fsync."""
    chunk = os.urandom(CHUNK)
    total = size_mib * MIB
    start = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < total:
            written += os.write(fd, chunk[: min(CHUNK, total - written)])
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - start
    return {"mb_per_s": total / elapsed / 1e6, "bytes": total, "seconds": elapsed}


def drop_from_page_cache(path: Path) -> bool:
    """Ask the kernel to forget the (clean, fsynced) file's cached pages."""
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def disk_read(path: Path) -> dict[str, Any]:
    dropped = drop_from_page_cache(path)
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    total = 0
    start = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(view)
            if not n:
                break
            total += n
    elapsed = time.perf_counter() - start
    return {
        "mb_per_s": total / elapsed / 1e6,
        "bytes": total,
        "seconds": elapsed,
        "page_cache_dropped": dropped,
    }


def gpu_matmul(index: int, dtype_name: str, n: int, budget_s: float) -> dict[str, Any]:
    """Square matmul TFLOP/s on one GPU (fp32 without TF32)."""
    import torch

    device = torch.device("cuda", index)
    dtype = getattr(torch, dtype_name)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")  # true fp32, no TF32
    try:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)

        def run() -> None:
            torch.mm(a, b)
            torch.cuda.synchronize(device)

        times = time_reps(run, budget_s)
    finally:
        torch.set_float32_matmul_precision(previous)
    flops = 2.0 * n**3
    return {
        "tflops": flops / statistics.median(times) / 1e12,
        "tflops_best": flops / min(times) / 1e12,
        "n": n,
        "reps": len(times),
        "dtype": dtype_name,
    }


def gpu_host_to_device(index: int, size_mib: int, budget_s: float) -> dict[str, Any]:
    """Pinned host memory to GPU copy bandwidth."""
    import torch

    device = torch.device("cuda", index)
    host = torch.ones(size_mib * MIB // 4, dtype=torch.float32).pin_memory()
    target = torch.empty_like(host, device=device)

    def run() -> None:
        target.copy_(host, non_blocking=True)
        torch.cuda.synchronize(device)

    times = time_reps(run, budget_s)
    size = host.numel() * host.element_size()
    return {
        "gb_per_s": size / statistics.median(times) / 1e9,
        "gb_per_s_best": size / min(times) / 1e9,
        "bytes": size,
        "reps": len(times),
    }


Stage = tuple[str, Callable[[], dict[str, Any] | None]]


def build_stages(
    directory: Path, disk_mb: int, quick: bool, skipped: dict[str, str]
) -> tuple[list[Stage], Path]:
    """The stages in run order, and the scratch file the disk stages use."""
    import torch

    budget = 0.3 if quick else 1.0
    scratch = directory / f".notebench-benchmark-{os.getpid()}-{secrets.token_hex(4)}.tmp"

    def bf16() -> dict[str, Any] | None:
        reason = cpu_bf16_support()
        if reason is not None:
            skipped["cpu_matmul_bf16"] = reason
            return None
        return cpu_matmul("bfloat16", budget, 1024 if quick else 2048)

    stages: list[Stage] = [
        ("cpu_matmul_fp32", lambda: cpu_matmul("float32", budget, 1024 if quick else 4096)),
        ("cpu_matmul_bf16", bf16),
        ("memory_bandwidth", lambda: memory_bandwidth(128 if quick else 256, budget)),
        ("disk_write", lambda: disk_write(scratch, disk_mb)),
        ("disk_read", lambda: disk_read(scratch)),
    ]
    if torch.cuda.is_available():
        n = 2048 if quick else 8192
        for i in range(torch.cuda.device_count()):
            major, _ = torch.cuda.get_device_capability(i)
            stages.append((f"gpu{i}_matmul_fp32", lambda i=i: gpu_matmul(i, "float32", n, budget)))
            if major >= 8:
                stages.append(
                    (f"gpu{i}_matmul_bf16", lambda i=i: gpu_matmul(i, "bfloat16", n, budget))
                )
            else:
                skipped[f"gpu{i}_matmul_bf16"] = "compute capability < 8.0: no fast bf16"
            stages.append((f"gpu{i}_matmul_fp16", lambda i=i: gpu_matmul(i, "float16", n, budget)))
            stages.append(
                (
                    f"gpu{i}_host_to_device",
                    lambda i=i: gpu_host_to_device(i, 64 if quick else 256, budget),
                )
            )
    return stages, scratch


def _progress(stage: str, fraction: float, message: str) -> dict[str, Any]:
    return {"type": "progress", "stage": stage, "fraction": fraction, "message": message}


def run(directory: Path, disk_mb: int, quick: bool) -> dict[str, Any]:
    """Run every stage, printing progress; the scratch file is always removed."""
    started = time.perf_counter()
    if not directory.is_dir():
        raise BenchmarkError(f"not a directory: {directory}")
    if not os.access(directory, os.W_OK):
        raise BenchmarkError(f"directory not writable: {directory}")
    try:
        import torch
    except Exception as error:
        raise BenchmarkError(f"torch cannot be imported: {error}") from error

    skipped: dict[str, str] = {}
    stages, scratch = build_stages(directory, disk_mb, quick, skipped)
    result: dict[str, Any] = {}
    total = len(stages)
    try:
        for done, (name, stage) in enumerate(stages):
            emit(_progress(name, done / total, f"running {name}"))
            result[name] = stage()
            emit(_progress(name, (done + 1) / total, f"finished {name}"))
    finally:
        scratch.unlink(missing_ok=True)
    result.update(
        skipped=skipped,
        duration_s=time.perf_counter() - started,
        torch_version=str(torch.__version__),
        threads=torch.get_num_threads(),
        quick=quick,
        dir=str(directory),
        disk_mb=disk_mb,
    )
    return result


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through ``finally``: the scratch file goes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m notebench.hardware.benchmark")
    parser.add_argument("--dir", required=True, type=Path, help="where the disk test writes")
    parser.add_argument("--disk-mb", type=int, default=None, help="disk test size in MiB")
    parser.add_argument("--quick", action="store_true", help="small sizes, short timings")
    args = parser.parse_args(argv)
    disk_mb = args.disk_mb if args.disk_mb is not None else (32 if args.quick else 256)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if disk_mb <= 0:
            raise BenchmarkError("--disk-mb must be positive")
        result = run(args.dir.absolute(), disk_mb, args.quick)
    except (SystemExit, KeyboardInterrupt):
        emit({"type": "error", "message": "benchmark interrupted"})
        return 1
    except Exception as error:
        message = str(error) if isinstance(error, BenchmarkError) else repr(error)
        emit({"type": "error", "message": message})
        return 1
    emit({"type": "result", "result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
