"""The torch probe: a child process describes torch, the caller never imports it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib import metadata

import pytest

from notebench.hardware import torch_probe
from notebench.hardware.torch_probe import (
    parse_probe_output,
    probe_cache_key,
    probe_command,
    probe_torch,
)


@pytest.fixture
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_probe, "_cache", {})


def test_probe_command_uses_this_interpreter() -> None:
    assert probe_command() == [sys.executable, "-m", "notebench.hardware.torch_probe"]


def test_another_interpreter_runs_the_probe_file_itself(tmp_path) -> None:
    """A bare venv (no notebench, no torch): the file runs there and says torch is absent."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = str(venv / "bin" / "python")
    command = probe_command(python)
    assert command[0] == python and command[1].endswith("torch_probe.py")
    done = subprocess.run(command, capture_output=True, timeout=120, check=True)
    assert json.loads(done.stdout)["installed"] is False
    assert probe_cache_key(python) == f"{python}|torch==none"


def test_cache_key_names_interpreter_and_torch_version() -> None:
    key = probe_cache_key()
    assert key.startswith(sys.executable)
    assert key.endswith(metadata.version("torch"))


def test_parse_takes_last_json_line_and_fills_missing_keys() -> None:
    out = b'warning: something\n{"installed": true, "version": "9.9"}\n\n'
    result = parse_probe_output(out)
    assert result["installed"] is True and result["version"] == "9.9"
    assert result["devices"] == [] and result["error"] is None


@pytest.mark.parametrize("out", [b"", b"not json\n", b"[1, 2]\n", b"{broken\n"])
def test_parse_without_result_is_an_error(out: bytes) -> None:
    result = parse_probe_output(out)
    assert result["installed"] is None
    assert result["error"]


def test_module_prints_one_json_object() -> None:
    done = subprocess.run(probe_command(), capture_output=True, timeout=120, check=True)
    result = json.loads(done.stdout)
    assert result["installed"] is True
    assert result["version"].startswith(metadata.version("torch").split("+")[0])
    assert result["cuda_available"] in (True, False)
    assert result["device_count"] == len(result["devices"])
    assert isinstance(result["num_threads"], int) and result["num_threads"] >= 1
    assert result["bf16_supported_cpu"] in (True, False)
    assert result["error"] is None


def test_probe_torch_caches_per_key(fresh_cache: None) -> None:
    first = probe_torch()
    assert first["installed"] is True
    first["version"] = "mutated by the caller"
    start = time.perf_counter()
    second = probe_torch()
    assert time.perf_counter() - start < 0.5
    assert second["version"] != "mutated by the caller"


def test_probe_torch_timeout_is_an_error_not_cached(
    fresh_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        torch_probe, "probe_command", lambda: [sys.executable, "-c", "import time; time.sleep(30)"]
    )
    start = time.perf_counter()
    result = probe_torch(timeout=0.5)
    assert time.perf_counter() - start < 10
    assert result["installed"] is None
    assert "longer than" in result["error"]
    assert torch_probe._cache == {}


def test_probe_torch_failure_reports_stderr(
    fresh_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = "import sys; sys.stderr.write('boom happened\\n'); sys.exit(3)"
    monkeypatch.setattr(torch_probe, "probe_command", lambda: [sys.executable, "-c", script])
    result = probe_torch()
    assert "boom happened" in result["error"]
    assert torch_probe._cache == {}


def test_probe_torch_missing_executable(fresh_cache: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_probe, "probe_command", lambda: ["/nonexistent/python"])
    result = probe_torch()
    assert result["installed"] is None and "could not start" in result["error"]


def test_torch_not_importable_is_installed_false(tmp_path, fresh_cache: None) -> None:
    # a "torch" package that fails to import shadows the real one in the child
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('no torch here')\n")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from notebench.hardware.torch_probe import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, timeout=60, check=True
    )
    result = parse_probe_output(done.stdout)
    assert result["installed"] is False
    assert "no torch here" in result["error"]
