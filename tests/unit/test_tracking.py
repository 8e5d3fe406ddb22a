"""report(), start_run() and should_stop(): what lands in events.jsonl, and when."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import notebench
from notebench import _jobdir, control, tracking


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch):
    for name in (_jobdir.JOB_DIR_ENV, _jobdir.JOB_ID_ENV, _jobdir.RUNS_DIR_ENV,
                 _jobdir.RESUME_ENV):
        monkeypatch.delenv(name, raising=False)
    tracking._reset()
    tracking._memory.points.clear()
    yield
    if tracking.active_run() is not None:
        tracking.active_run().end()
    tracking._reset()


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "j-0123456789ab"
    monkeypatch.setenv(_jobdir.JOB_ID_ENV, directory.name)
    monkeypatch.setenv(_jobdir.JOB_DIR_ENV, str(directory))
    return directory


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A fake monotonic clock for the flush interval: set ``clock[0]``."""
    now = [1000.0]
    monkeypatch.setattr(tracking, "_monotonic", lambda: now[0])
    return now


def test_report_appends_metrics_lines(job: Path) -> None:
    notebench.report(step=1, total_steps=10, loss=0.5, accuracy=1, lr=np.float32(0.25))
    [event] = lines(job / "events.jsonl")
    assert event["kind"] == "metrics" and isinstance(event["t"], float)
    assert event["step"] == 1 and event["total_steps"] == 10
    assert event["metrics"] == {"loss": 0.5, "accuracy": 1, "lr": 0.25}


def test_lines_are_buffered_for_50_ms(job: Path, clock: list[float]) -> None:
    path = job / "events.jsonl"
    notebench.report(step=1, loss=1.0)  # the first point is written at once
    clock[0] += 0.01
    notebench.report(step=2, loss=2.0)
    notebench.report(step=3, loss=3.0)
    assert [e["step"] for e in lines(path)] == [1]
    clock[0] += 0.05
    notebench.report(step=4, loss=4.0)  # 50 ms since the last write: all of them go
    assert [e["step"] for e in lines(path)] == [1, 2, 3, 4]
    assert path.read_bytes().endswith(b"\n")


def test_should_stop_and_flush_write_pending_lines(job: Path, clock: list[float]) -> None:
    path = job / "events.jsonl"
    notebench.report(step=1, loss=1.0)
    notebench.report(step=2, loss=2.0)
    assert len(lines(path)) == 1
    assert notebench.should_stop() is False
    assert len(lines(path)) == 2
    notebench.report(step=3, loss=3.0)
    tracking.flush()
    assert len(lines(path)) == 3


def test_nonfinite_values_are_tagged(job: Path) -> None:
    notebench.report(step=1, a=math.nan, b=math.inf, c=-math.inf, d=np.float64("nan"), e=2.0)
    tracking.flush()
    [event] = lines(job / "events.jsonl")
    assert event["metrics"] == {"a": {"nonfinite": "nan"}, "b": {"nonfinite": "inf"},
                                "c": {"nonfinite": "-inf"}, "d": {"nonfinite": "nan"}, "e": 2.0}
    point = tracking.history()[0]
    assert math.isnan(point["metrics"]["a"]) and point["metrics"]["c"] == -math.inf


def test_numbers_of_other_types(job: Path) -> None:
    torch = pytest.importorskip("torch")
    notebench.report(step=np.int64(3), total_steps=torch.tensor(9), flag=True,
                     loss=torch.tensor(0.5, requires_grad=True) * 2, n=np.int32(7))
    tracking.flush()
    [event] = lines(job / "events.jsonl")
    assert (event["step"], event["total_steps"]) == (3, 9)
    assert event["metrics"] == {"flag": 1, "loss": 1.0, "n": 7}


@pytest.mark.parametrize("value", ["high", [1.0, 2.0], None])
def test_non_numbers_are_refused(job: Path, value: object) -> None:
    with pytest.raises(TypeError, match="metric 'x'"):
        notebench.report(step=1, x=value)


def test_outside_a_job_points_stay_in_memory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    notebench.report(step=1, loss=0.5)
    notebench.report(loss=math.nan)
    assert notebench.should_stop() is False
    points = tracking.history()
    assert [p["step"] for p in points] == [1, None]
    assert points[0]["metrics"] == {"loss": 0.5} and math.isnan(points[1]["metrics"]["loss"])
    assert list(tmp_path.iterdir()) == []


def test_exit_writes_buffered_lines(job: Path) -> None:
    code = ("import notebench\n"
            "for step in range(1, 101):\n"
            "    notebench.report(step=step, loss=step / 100)\n")
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy(), timeout=60)
    assert [e["step"] for e in lines(job / "events.jsonl")] == list(range(1, 101))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_writes_its_parents_lines(job: Path, clock: list[float]) -> None:
    notebench.report(step=1, loss=1.0)
    notebench.report(step=2, loss=2.0)  # buffered when the child is forked
    pid = os.fork()
    if pid == 0:  # a DataLoader worker, say
        tracking.flush()
        os._exit(0)
    os.waitpid(pid, 0)
    assert [e["step"] for e in lines(job / "events.jsonl")] == [1]
    tracking.flush()
    assert [e["step"] for e in lines(job / "events.jsonl")] == [1, 2]


def test_stop_request_is_seen_once_and_recorded(job: Path) -> None:
    assert not notebench.should_stop()
    job.mkdir(parents=True, exist_ok=True)
    (job / "control.json").write_text('{"stop": false}')
    assert not notebench.should_stop()
    (job / "control.json").write_text('{"stop": tr')  # half-written: not yet
    assert not notebench.should_stop()
    control.request_stop()
    assert notebench.should_stop() and notebench.should_stop()
    kinds = [e["kind"] for e in lines(job / "events.jsonl")]
    assert kinds.count("stopping") == 1
    assert issubclass(notebench.StopTraining, Exception)


def test_start_run_creates_a_run_directory(tmp_path: Path, monkeypatch) -> None:
    runs = tmp_path / "artifacts" / "jobs"
    monkeypatch.setenv(_jobdir.RUNS_DIR_ENV, str(runs))
    run = notebench.start_run("my experiment")
    assert run.id is not None and len(run.id) == 14 and run.id.startswith("r-")
    assert run.dir == runs / run.id
    info = json.loads((run.dir / "run.json").read_text())
    assert info["id"] == run.id and info["name"] == "my experiment"
    assert info["kind"] == "interactive" and info["pid"] == os.getpid()
    assert isinstance(info["started"], float)
    notebench.report(step=1, total_steps=2, loss=0.5)
    assert notebench.should_stop() is False
    run.end()
    events = lines(run.dir / "events.jsonl")
    assert [e["kind"] for e in events] == ["metrics", "run_end"]
    assert events[-1]["status"] == "succeeded"
    notebench.report(step=2, loss=0.25)  # after the run: back to memory
    assert len(lines(run.dir / "events.jsonl")) == 2
    assert tracking.history()[-1]["step"] == 2


def test_a_run_context_ends_quietly_on_stop(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(_jobdir.RUNS_DIR_ENV, str(tmp_path))
    with notebench.start_run() as run:
        control.request_stop()
        if notebench.should_stop():
            raise notebench.StopTraining
    assert run.status == "stopped"
    assert lines(run.dir / "events.jsonl")[-1] == {**lines(run.dir / "events.jsonl")[-1],
                                                  "kind": "run_end", "status": "stopped"}
    with pytest.raises(ZeroDivisionError), notebench.start_run() as failing:
        1 / 0  # noqa: B018
    assert failing.status == "failed"


def test_a_new_run_ends_the_previous_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(_jobdir.RUNS_DIR_ENV, str(tmp_path))
    first = notebench.start_run("a")
    second = notebench.start_run("b")
    assert first.status == "succeeded" and tracking.active_run() is second
    assert lines(first.dir / "events.jsonl")[-1]["kind"] == "run_end"


def test_start_run_without_a_server_keeps_points_in_memory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match="NOTEBENCH_RUNS_DIR"):
        run = notebench.start_run()
    notebench.report(step=1, loss=1.0)
    run.end()
    assert run.dir is None and tracking.history()[-1]["metrics"] == {"loss": 1.0}


def test_start_run_inside_a_job_is_the_job(job: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(_jobdir.RUNS_DIR_ENV, str(tmp_path / "runs"))
    run = notebench.start_run()
    assert (run.id, run.dir, run.interactive) == (job.name, job, False)
    notebench.report(step=1, loss=1.0)
    run.end()
    assert [e["kind"] for e in lines(job / "events.jsonl")] == ["metrics"]
    assert not (tmp_path / "runs").exists()
