"""The benchmark module, run for real (--quick) in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODULE = "notebench.hardware.benchmark"


def run(*args: str, timeout: float = 120) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run(
        [sys.executable, "-m", MODULE, *args], capture_output=True, text=True, timeout=timeout
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def test_quick_run(tmp_path: Path) -> None:
    start = time.perf_counter()
    code, lines = run("--dir", str(tmp_path), "--quick")
    elapsed = time.perf_counter() - start
    assert code == 0, lines
    assert elapsed < 30  # ~3 s on a 2-core machine
    progress = lines[:-1]
    assert all(line["type"] == "progress" for line in progress)
    fractions = [line["fraction"] for line in progress]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1
    stages = {line["stage"] for line in progress}
    assert {"cpu_matmul_fp32", "memory_bandwidth", "disk_write", "disk_read"} <= stages

    assert lines[-1]["type"] == "result"
    result = lines[-1]["result"]
    assert result["cpu_matmul_fp32"]["gflops"] > 0
    assert result["memory_bandwidth"]["gb_per_s"] > 0
    assert result["disk_write"]["mb_per_s"] > 0 and result["disk_write"]["bytes"] == 32 << 20
    assert result["disk_read"]["mb_per_s"] > 0 and result["disk_read"]["bytes"] == 32 << 20
    bf16 = result["cpu_matmul_bf16"]
    assert (bf16 is None) == ("cpu_matmul_bf16" in result["skipped"])
    assert bf16 is None or bf16["gflops"] > 0
    assert result["duration_s"] > 0 and result["threads"] >= 1 and result["torch_version"]
    assert list(tmp_path.iterdir()) == []  # the scratch file is gone


def test_error_is_a_json_line_and_exit_code_1(tmp_path: Path) -> None:
    code, lines = run("--dir", str(tmp_path / "missing"), "--quick")
    assert code == 1
    assert lines == [{"type": "error", "message": f"not a directory: {tmp_path / 'missing'}"}]


def test_bad_size_is_an_error(tmp_path: Path) -> None:
    code, lines = run("--dir", str(tmp_path), "--disk-mb", "0")
    assert code == 1 and lines[-1]["type"] == "error"


def test_bf16_matmul_measures_where_it_runs() -> None:
    # the CLI skips bf16 without native support; the measurement itself works anywhere
    code = (
        "import json; from notebench.hardware.benchmark import cpu_matmul; "
        "print(json.dumps(cpu_matmul('bfloat16', 0.05, 256)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(done.stdout)
    assert result["gflops"] > 0 and result["n"] <= 256 and result["dtype"] == "bfloat16"


def test_sigterm_during_disk_write_removes_the_file(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", MODULE, "--dir", str(tmp_path), "--quick", "--disk-mb", "4096"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            record = json.loads(line)
            if record.get("stage") == "disk_write":
                break
        time.sleep(0.2)
        process.terminate()
        rest = process.stdout.read()
        assert process.wait(timeout=30) == 1
    finally:
        if process.poll() is None:
            process.kill()
    assert json.loads(rest.splitlines()[-1])["type"] == "error"
    assert list(tmp_path.iterdir()) == []
