"""The hardware routes on a real server: profile, recommendations, benchmark runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.server_process import ServerProcess


async def test_profile_answers_without_a_gpu(api, jp_root_dir):
    response = await api("GET", "hardware")
    assert response.status == 200
    profile = response.body
    assert profile["gpus"] == []
    assert profile["gpu_status"]["available"] is False
    assert profile["gpu_status"]["reason"]
    assert profile["cpu"]["logical_cores"] >= 1
    assert profile["memory"]["effective_total_bytes"] <= profile["memory"]["total_bytes"]
    assert profile["storage"]["path"] == str((jp_root_dir / "notebench").resolve())
    assert profile["torch"]["installed"] is True
    assert profile["torch"]["version"].startswith("2.")
    assert profile["torch"]["cuda_available"] is False
    assert profile["benchmark"] is None


async def test_torch_facts_are_cached_in_the_store(api, services):
    first = await api("GET", "hardware")
    services.hardware._torch.clear()  # forget the in-memory copy: the store still has it
    second = await api("GET", "hardware")
    assert second.body["torch"] == first.body["torch"]
    assert second.body["fingerprint"] == first.body["fingerprint"]


async def test_recommendations_have_values_and_reasons(api):
    response = await api("GET", "hardware/recommendations")
    assert response.status == 200
    settings = response.body["settings"]
    assert settings["device"]["value"] == "cpu"
    assert settings["pin_memory"]["value"] is False
    assert settings["num_workers"]["value"] >= 0
    for name, setting in settings.items():
        assert setting["reason"].strip(), f"{name} has no reason"


async def test_benchmark_runs_reports_progress_and_persists(api, services, jp_root_dir):
    events = []

    class Collector:
        topics = frozenset({"hardware"})

        def push(self, batch):
            events.extend(batch)

        def push_raw(self, frame):
            pass

    collector = Collector()
    services.bus.subscribe(collector)
    started = await api("POST", "hardware/benchmark")
    assert started.status == 202
    assert started.body["state"] == "running"
    again = await api("POST", "hardware/benchmark")
    assert again.status == 409
    assert again.body["error"]["code"] == "benchmark_running"

    for _ in range(600):
        status = await api("GET", "hardware/benchmark")
        if status.body["state"] != "running":
            break
        await asyncio.sleep(0.2)
    services.bus.unsubscribe(collector)
    assert status.body["state"] == "succeeded", status.body
    result = status.body["result"]
    assert result["cpu_matmul_fp32"]["gflops"] > 0
    assert result["memory_bandwidth"]["gb_per_s"] > 0
    assert result["disk_write"]["mb_per_s"] > 0 and result["disk_read"]["mb_per_s"] > 0

    types = [e.type for e in events]
    assert types[0] == "benchmark.started"
    assert types.count("benchmark.progress") >= 3
    assert types[-1] == "benchmark.result"
    fractions = [e.data["fraction"] for e in events if e.type == "benchmark.progress"]
    assert fractions == sorted(fractions)
    assert all(e.id is not None for e in events), "benchmark events must be replayable"
    assert list((jp_root_dir / "notebench" / ".notebench" / "tmp").iterdir()) == []

    profile = await api("GET", "hardware")
    assert profile.body["benchmark"]["id"] == started.body["id"]
    assert profile.body["benchmark"]["fingerprint"] == profile.body["fingerprint"]

    # a different machine (another fingerprint) no longer shows this result
    await services.store.write(lambda conn: conn.execute(
        "UPDATE hardware_benchmarks SET fingerprint = 'another-machine'"))
    assert (await api("GET", "hardware")).body["benchmark"] is None


def test_server_process_never_imports_torch(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    server = ServerProcess(root).start()
    try:
        status, profile = server.request("GET", "hardware")
        assert status == 200 and profile["torch"]["installed"] is True
        maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
        assert "libtorch" not in maps
    finally:
        server.stop()


async def test_a_kernel_names_the_environment_of_the_torch_facts(api, jp_serverapp, services,
                                                                 tmp_path, monkeypatch):
    """A kernelspec whose interpreter has no notebench (a bare venv): the probe still runs
    there (it needs only the standard library), and the profile says where facts came from."""
    import json
    import subprocess
    import sys

    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    # the probe sees what the kernel would: pytest-jupyter's PYTHONPATH names this venv
    monkeypatch.delenv("PYTHONPATH", raising=False)
    spec = Path(jp_serverapp.kernel_spec_manager.kernel_dirs[0]) / "bare"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(venv / "bin" / "python"), "-m", "ipykernel_launcher", "-f",
                 "{connection_file}"], "display_name": "bare", "language": "python"}))
    bare = await api("GET", "hardware", params={"kernel_name": "bare"})
    assert bare.status == 200, bare.body
    assert bare.body["torch"]["installed"] is False, (bare.body["facts_from"], bare.body["torch"])
    assert "torch" in bare.body["torch"]["error"]  # why: no module named torch
    assert bare.body["facts_from"]["torch"]["python"] == str(venv / "bin" / "python")
    assert bare.body["facts_from"]["torch"]["source"] == "kernelspec"
    # "no torch there" is an answer too: kept in the store under that interpreter's key
    stored = await services.store.read(lambda conn: conn.execute(
        "SELECT key FROM kv_cache WHERE key = ?",
        (f"torch_probe:{venv / 'bin' / 'python'}|torch==none",)).fetchall())
    assert len(stored) == 1
    own = await api("GET", "hardware")
    assert own.body["torch"]["installed"] is True
    assert own.body["facts_from"]["torch"] == {"source": "server", "kernel_name": None,
                                               "python": sys.executable,
                                               "facts": ["torch", "benchmark"]}
    assert own.body["fingerprint"] != bare.body["fingerprint"]
    for name, code in (("no-such-kernel", "unknown_kernel"), ("x" * 300, "unknown_kernel")):
        refused = await api("GET", "hardware/recommendations", params={"kernel_name": name})
        assert refused.status == 400 and refused.body["error"]["code"] == code
