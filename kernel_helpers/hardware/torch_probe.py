"""What torch can do here, found out in a child process so the caller never imports torch.

Run as ``python -m notebench.hardware.torch_probe``: prints one JSON object. Callers use
``probe_torch()``, which runs that command and caches the answer per interpreter and
torch version.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

PROBE_MODULE = "notebench.hardware.torch_probe"

_cache: dict[str, dict[str, Any]] = {}
_cache_lock = threading.Lock()


def empty_result(error: str | None = None, installed: bool | None = None) -> dict[str, Any]:
    """The probe's answer with every fact unknown."""
    return {
        "installed": installed,
        "version": None,
        "cuda_available": None,
        "cuda_version": None,
        "hip_version": None,
        "cudnn_version": None,
        "device_count": None,
        "devices": [],
        "mps_available": None,
        "bf16_supported_cpu": None,
        "bf16_fast_cpu": None,
        "num_threads": None,
        "num_interop_threads": None,
        "error": error,
    }


def _guard(fn: Any, default: Any = None) -> Any:
    try:
        return fn()
    except Exception:
        return default


def _cuda_devices(torch: Any) -> list[dict[str, Any]]:
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        major, minor = props.major, props.minor
        devices.append(
            {
                "index": index,
                "name": props.name,
                "capability": f"{major}.{minor}",
                "total_memory_bytes": int(props.total_memory),
                "multi_processor_count": getattr(props, "multi_processor_count", None),
                "bf16_supported": (major, minor) >= (8, 0),
                "uuid": _guard(lambda p=props: f"GPU-{p.uuid}" if p.uuid else None),
            }
        )
    return devices


def _bf16_cpu(torch: Any) -> bool:
    """Whether a bf16 matmul runs on the CPU at all (it may still be slow)."""
    a = torch.ones((4, 4), dtype=torch.bfloat16)
    return bool((a @ a)[0, 0].item() == 4)


def _bf16_fast_cpu(torch: Any) -> bool | None:
    """Whether oneDNN has native bf16 kernels for this CPU (avx512_bf16 / AMX)."""
    if not torch.backends.mkldnn.is_available():
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def collect() -> dict[str, Any]:
    """Import torch in this process and describe it."""
    result = empty_result()
    try:
        import torch
    except Exception as error:  # ImportError, or a broken install (OSError on a .so)
        result.update(installed=False, error=f"{type(error).__name__}: {error}")
        return result
    result["installed"] = True
    result["version"] = str(torch.__version__)
    result["cuda_version"] = torch.version.cuda
    result["hip_version"] = getattr(torch.version, "hip", None)
    result["cuda_available"] = _guard(torch.cuda.is_available, False)
    if result["cuda_available"]:
        result["cudnn_version"] = _guard(torch.backends.cudnn.version)
        result["devices"] = _guard(lambda: _cuda_devices(torch), [])
        result["device_count"] = len(result["devices"])
    else:
        result["device_count"] = 0
    result["mps_available"] = _guard(lambda: torch.backends.mps.is_available(), False)
    result["bf16_supported_cpu"] = _guard(lambda: _bf16_cpu(torch), False)
    result["bf16_fast_cpu"] = _guard(lambda: _bf16_fast_cpu(torch))
    result["num_threads"] = torch.get_num_threads()
    result["num_interop_threads"] = torch.get_num_interop_threads()
    return result


def probe_command(python: str | None = None) -> list[str]:
    """The command that prints the probe's JSON, run by ``python`` (default: this one).
    Another interpreter runs this file itself: it needs only the standard library (and
    torch), not notebench, so any kernel environment can be probed."""
    if python is None or python == sys.executable:
        return [sys.executable, "-m", PROBE_MODULE]
    return [python, str(Path(__file__).resolve())]


def parse_probe_output(stdout: bytes | str) -> dict[str, Any]:
    """The probe's JSON object (the last line that is one); an error result if none."""
    text = stdout.decode(errors="replace") if isinstance(stdout, bytes) else stdout
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return {**empty_result(), **value}
    return empty_result(error="the torch probe printed no result")


def torch_distribution_version() -> str | None:
    """The installed torch version from its metadata, without importing torch."""
    try:
        return metadata.version("torch")
    except Exception:
        return None


#: prints the torch version of the interpreter that runs it (metadata only, no import)
VERSION_SNIPPET = ("import importlib.metadata as m\n"
                   "try: print(m.version('torch'))\n"
                   "except m.PackageNotFoundError: print('none')")


def torch_version_of(python: str, timeout: float = 60) -> str | None:
    """The torch version installed for another interpreter ('none' when absent; None when
    that interpreter cannot tell)."""
    try:
        done = subprocess.run([python, "-c", VERSION_SNIPPET], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def probe_cache_key(python: str | None = None) -> str:
    """Interpreter and torch version: the probe's answer is valid while these hold."""
    if python is None or python == sys.executable:
        return f"{sys.executable}|torch=={torch_distribution_version() or 'none'}"
    return f"{python}|torch=={torch_version_of(python) or 'unknown'}"


def _run(timeout: float) -> tuple[dict[str, Any], bool]:
    """The probe's answer and whether it is worth caching."""
    try:
        done = subprocess.run(
            probe_command(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return empty_result(error=f"the torch probe took longer than {timeout:g} s"), False
    except OSError as error:
        return empty_result(error=f"the torch probe could not start: {error}"), False
    result = parse_probe_output(done.stdout)
    if done.returncode == 0 and result.get("installed") is not None:
        return result, True
    stderr = done.stderr.decode(errors="replace").strip().splitlines()
    if done.returncode != 0 or stderr:
        detail = stderr[-1] if stderr else f"exit code {done.returncode}"
        result["error"] = f"the torch probe failed ({detail})"
    return result, False


def probe_torch(timeout: float = 120) -> dict[str, Any]:
    """Torch facts from a child process, cached per ``probe_cache_key()``; never raises."""
    key = probe_cache_key()
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return copy.deepcopy(cached)
    try:
        result, cacheable = _run(timeout)
    except Exception as error:  # keep the promise: a caller never sees an exception
        result, cacheable = empty_result(error=f"the torch probe failed: {error!r}"), False
    if cacheable:
        with _cache_lock:
            _cache[key] = copy.deepcopy(result)
    return result


def main() -> int:
    json.dump(collect(), sys.stdout, default=str)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
