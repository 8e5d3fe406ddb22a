"""GPU check: the code paths that only a real NVIDIA GPU exercises (run by hand on one).

Everything here runs against a real driver and a CUDA build of torch, and prints one JSON
document (also written to ``--out``): NVML devices, samples and per-process memory (seen
while this process holds memory on the GPU); the hardware profile and the recommended
settings; the GPU stages of the hardware benchmark; the monitoring sampler while the GPU
works; ``auto_batch_size`` in memory mode (on the image-classifier template's model against
a power-of-two sweep and Lightning's finder, and on a model large enough to run out of
memory); and, with ``--server``, a real Jupyter server with notebench running the
image-classifier template on the GPU.

    python tests/gpu/gpu_check.py --out gpu_check.json [--server]

Each check records ``ok`` and what it saw; a failing check does not stop the others. The
exit status is 1 when any check failed. The CI machines have no GPU: there the same paths
are tested against a fake ``pynvml`` (tests/unit).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GIB = 1 << 30


def check(results: dict[str, Any], name: str, fn: Callable[[], dict[str, Any]]) -> None:
    """Run one check; record what it returned, or its failure."""
    started = time.perf_counter()
    try:
        outcome = fn()
        outcome.setdefault("ok", True)
    except Exception as exc:
        outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc(limit=6)}
    outcome["seconds"] = round(time.perf_counter() - started, 2)
    results[name] = outcome
    print(f"[{'ok' if outcome['ok'] else 'FAILED'}] {name} ({outcome['seconds']} s)", flush=True)


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# -- NVML --------------------------------------------------------------------------------------


def nvml_devices() -> dict[str, Any]:
    import torch

    from notebench.hardware.nvml import Nvml

    nv = Nvml()
    expect(nv.available, f"NVML not available: {nv.reason()}")
    devices = nv.devices()
    expect(len(devices) == torch.cuda.device_count(),
           f"NVML sees {len(devices)} GPUs, torch {torch.cuda.device_count()}")
    held = torch.empty(2 * GIB, dtype=torch.uint8, device="cuda")  # 2 GiB held meanwhile
    torch.cuda.synchronize()
    sample = nv.sample()
    processes = nv.processes()
    mine = [p for p in processes if p["pid"] == os.getpid()]
    del held
    torch.cuda.empty_cache()
    expect(sample and sample[0].get("memory_used_bytes", 0) >= 2 * GIB,
           f"memory_used_bytes under the 2 GiB held: {sample}")
    return {"devices": devices, "sample": sample, "processes": processes,
            "this_pid": os.getpid(), "this_process_listed": bool(mine),
            "note": "" if mine else "NVML lists no process with this pid (a pid namespace "
                    "or sandbox hides it); per-job GPU memory then stays empty"}


# -- profile, recommendations, benchmark ----------------------------------------------------------


def profile_and_recommendations() -> dict[str, Any]:
    from notebench.hardware import hardware_profile, recommended_settings

    profile = hardware_profile()
    settings = recommended_settings(profile)
    gpus = profile.get("gpus")
    torch_info = profile.get("torch", {})
    expect(bool(torch_info.get("cuda_available", torch_info.get("cuda"))),
           f"torch probe saw no CUDA: {json.dumps(torch_info)[:500]}")
    device = settings.get("device", {}).get("value")
    expect(device is not None and str(device).startswith("cuda"),
           f"recommended device is {device!r}")
    return {"gpus": gpus, "torch": torch_info, "recommended": settings}


def hardware_benchmark() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        proc = subprocess.run(
            [sys.executable, "-m", "notebench.hardware.benchmark", "--dir", scratch, "--quick"],
            capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    results = [line["result"] for line in lines if line.get("type") == "result"]
    expect(proc.returncode == 0 and bool(results), f"benchmark failed: {proc.stderr[-2000:]}")
    result = results[0]
    gpu_stages = {k: v for k, v in result.items() if k.startswith("gpu")}
    expect(bool(gpu_stages), "no GPU stage ran")
    expect(all(v and v.get("tflops", v.get("gb_per_s", 0)) > 0 for v in gpu_stages.values()),
           f"a GPU stage measured nothing: {gpu_stages}")
    return {"gpu_stages": gpu_stages, "skipped": result.get("skipped"),
            "duration_s": result.get("duration_s")}


# -- monitoring sampler ------------------------------------------------------------------------


def load_sampler_class() -> type:
    """The sampler module alone (it needs neither Tornado nor jupyter_server)."""
    path = ROOT / "server_ext" / "monitoring" / "sampler.py"
    spec = importlib.util.spec_from_file_location("notebench_gpu_check_sampler", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Sampler


def sampler_under_load() -> dict[str, Any]:
    import torch

    sampler = load_sampler_class()(interval=0.5, on_sample=lambda s: None,
                                   job_pids=lambda: {"this": [os.getpid()]})
    stop = threading.Event()

    def work() -> None:
        a = torch.randn(8192, 8192, device="cuda")
        while not stop.is_set():
            for _ in range(20):
                a = a @ a
                a = a / a.norm()
            torch.cuda.synchronize()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        time.sleep(2.0)
        sampler._prime()
        samples = []
        for _ in range(4):
            time.sleep(0.5)
            samples.append(sampler.sample_once())
    finally:
        stop.set()
        worker.join(30)
    gpus = [s["gpus"] for s in samples]
    utilization = [g[0]["utilization_percent"] for g in gpus if g]
    expect(all(g for g in gpus), "a sample had no GPU")
    expect(max(u or 0 for u in utilization) > 20, f"GPU utilization stayed low: {utilization}")
    return {"utilization_percent": utilization, "last_gpu": gpus[-1],
            "job_entry": samples[-1]["jobs"], "gpu_status": samples[-1]["gpu_status"],
            "sampler_cost": samples[-1]["cost"]}


# -- auto_batch_size ---------------------------------------------------------------------------


def batch_size_template(lightning: bool) -> dict[str, Any]:
    """The template's CNN: memory mode against a throughput sweep and Lightning's finder."""
    import torch
    import torch.nn.functional as F

    import notebench
    from tests.benchmarks.jobs_kernel_parts import (
        _template_data,
        _template_model_class,
        lightning_finder,
    )

    model_class = _template_model_class()
    x, y = (t.cuda() for t in _template_data())
    # one step first: CUDA's context and kernels load once per process, and neither chooser
    # should be charged with it
    # (the first optimizer step of a process also imports parts of torch)
    warm = model_class(1, 10).cuda()
    F.cross_entropy(warm(x[:8]), y[:8]).backward()
    torch.optim.Adam(warm.parameters()).step()
    torch.cuda.synchronize()
    torch.manual_seed(0)
    model = model_class(1, 10).cuda()
    choice = notebench.auto_batch_size(model, (x[:64], y[:64]), loss_fn=F.cross_entropy,
                                       max_batch=len(y))
    expect(choice.mode == "memory", f"mode {choice.mode} on CUDA")
    sizes = sorted({2**k for k in range(1, 16) if 2**k <= len(y)} | {choice.batch_size})
    rates = {}
    for batch in sizes:
        torch.manual_seed(0)
        net = model_class(1, 10).cuda()
        optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)

        def step(net: Any = net, optimizer: Any = optimizer, batch: int = batch) -> None:
            index = torch.randint(0, len(y), (batch,), device="cuda")
            loss = F.cross_entropy(net(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        for _ in range(3):
            step()
        torch.cuda.synchronize()
        steps, start = 0, time.perf_counter()
        while steps < 5 or time.perf_counter() - start < 0.3:
            step()
            steps += 1
        torch.cuda.synchronize()
        rates[batch] = steps * batch / (time.perf_counter() - start)
    best = max(rates, key=rates.get)
    out: dict[str, Any] = {
        "train_rows": len(y), "chosen": choice.batch_size, "decision_s": choice.elapsed_s,
        "reason": choice.reason, "trials": [vars(t) for t in choice.trials],
        "sweep_samples_per_s": rates, "sweep_best": best,
        "of_sweep_best": rates[choice.batch_size] / rates[best],
    }
    if lightning:
        found = lightning_finder(model_class, x.cpu(), y.cpu(), accelerator="gpu")
        if "batch_size" in found:  # a batch larger than the dataset is all of it at once
            found["effective_batch_size"] = min(found["batch_size"], len(y))
        out["lightning_power"] = found
    return out


def batch_size_out_of_memory() -> dict[str, Any]:
    """A model whose activations fill the GPU: the search must meet OOM and back off."""
    import torch
    from torch import nn

    import notebench

    side = 256
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, padding=1), nn.ReLU()]
    for _ in range(5):
        layers += [nn.Conv2d(64, 64, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
    model = nn.Sequential(*layers).cuda()
    sample = (torch.randn(8, 3, side, side, device="cuda"),
              torch.randint(0, 10, (8,), device="cuda"))
    free, total = torch.cuda.mem_get_info()
    choice = notebench.auto_batch_size(model, sample, loss_fn=nn.functional.cross_entropy,
                                       max_batch=1 << 16, precision="bf16-mixed",
                                       time_budget_s=40)
    failed = [t for t in choice.trials if t.error]
    expect(bool(failed) or choice.budget_bytes is not None,
           "neither an OOM nor a memory budget bound it")
    # the chosen size really trains, twice in a row, without running out of memory
    inputs = torch.randn(choice.batch_size, 3, side, side, device="cuda")
    target = torch.randint(0, 10, (choice.batch_size,), device="cuda")
    optimizer = torch.optim.Adam(model.parameters())
    torch.cuda.reset_peak_memory_stats()
    for _ in range(2):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(model(inputs), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    return {"chosen": choice.batch_size, "decision_s": choice.elapsed_s,
            "reason": choice.reason, "budget_bytes": choice.budget_bytes,
            "free_before_bytes": free, "total_bytes": total,
            "trials": [vars(t) for t in choice.trials],
            "oom_trials": len(failed), "peak_bytes_at_chosen": peak,
            "peak_of_total": peak / total}


# -- a real server running the template on the GPU ----------------------------------------------


def server_job() -> dict[str, Any]:
    import urllib.request

    from notebench.client import Client
    from tests.server_process import ServerProcess

    root = Path(tempfile.mkdtemp(prefix="nb-gpu-")) / "root"
    root.mkdir()
    server = ServerProcess(root).start()
    try:
        client = Client(server.url, server.token)
        profile = client.get("hardware")
        expect(bool(profile.get("gpus")), f"server profile has no GPU: {profile.get('gpus')}")
        job = client.post("lifecycle/jobs", json={
            "template": "train_image_classifier", "parameters": {"epochs": 3}})
        deadline = time.monotonic() + 240
        sample: dict[str, Any] = {}
        usage_seen: list[Any] = []
        state = job
        for event in client.stream(["monitoring"], timeout=30):
            if event.event == "sample":
                sample = event.data.get("data", event.data)  # the multiplexed envelope
                if job["id"] in (sample.get("jobs") or {}):
                    usage_seen.append(sample["jobs"][job["id"]])
            state = client.get(f"lifecycle/jobs/{job['id']}")
            if state["state"] in ("succeeded", "failed", "stopped", "cancelled") \
                    or time.monotonic() > deadline:
                break
        request = urllib.request.Request(f"{server.url}notebench/metrics",
                                         headers={"Authorization": f"token {server.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            prometheus = [line for line in response.read().decode().splitlines()
                          if "gpu" in line and not line.startswith("#")]
        problems = [message for passed, message in (
            (state["state"] == "succeeded", f"job ended {state['state']}: {state.get('error')}"),
            (bool(sample.get("gpus")), "monitoring samples carry no GPU"),
            (bool(prometheus), "no GPU series in notebench/metrics"),
            (str(state["resolved_parameters"].get("device")).startswith("cuda"),
             "the job did not train on the GPU"),
        ) if not passed]
        return {"ok": not problems, "problems": problems, "job_state": state["state"],
                "resolved": state["resolved_parameters"],
                "auto": state.get("auto"), "resources": state["resources"],
                "usage": state.get("usage"), "latest_metrics": state["latest_metrics"],
                "duration": state["duration"], "usage_seen_in_stream": usage_seen[-3:],
                "monitoring_gpus": sample.get("gpus"), "prometheus_gpu_lines": prometheus[:40]}
    finally:
        server.kill()
        if os.environ.get("GPU_CHECK_VERBOSE"):
            print(server.log_path.read_text(errors="replace")[-4000:])


def release_gpu_memory() -> None:
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--server", action="store_true", help="also run a template job")
    parser.add_argument("--no-lightning", action="store_true")
    parser.add_argument("--only", default=None, help="comma-separated check names")
    args = parser.parse_args(argv)
    checks: dict[str, Callable[[], dict[str, Any]]] = {
        "nvml": nvml_devices,
        "profile": profile_and_recommendations,
        "benchmark": hardware_benchmark,
        "sampler": sampler_under_load,
        "auto_batch_size_template": lambda: batch_size_template(not args.no_lightning),
        "auto_batch_size_oom": batch_size_out_of_memory,
    }
    if args.server:
        checks["server_job"] = server_job
    wanted = set(args.only.split(",")) if args.only else set(checks)
    results: dict[str, Any] = {}
    for name, fn in checks.items():
        if name in wanted:
            check(results, name, fn)
            release_gpu_memory()  # what a check cached must not starve the next (a job too)
    text = json.dumps(results, indent=1, default=str)
    if args.out:
        args.out.write_text(text)
    print(text[:20000])
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
