"""The worker side of a remote job against a stand-in of the server's ingest routes:
``Forwarder`` (bytes exactly once through cuts, whole files by sha256, control applied to
real processes) and ``run_remote_job`` end to end with a real runner."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest

from notebench.jobprotocol import (
    CONTROL_FILE,
    ENVIRONMENT,
    EVENTS_FILE,
    JOB_JSON,
    NOTEBOOK,
    OUTPUT,
    PAPERMILL_LOG,
    RUNNER_FILE,
    new_job_id,
)
from notebench.server.jobs.executor import LocalProcessExecutor
from notebench.server.jobs.forwarder import Forwarder, ForwarderSettings
from notebench.server.jobs.ingest import STREAMS
from notebench.server.jobs.ingest_client import IngestClient
from notebench.server.jobs.remote_runner import JOBS_FOLDER, run_remote_job
from notebench.server.jobs.submission import Submission, SubmissionSettings
from tests.ingest_standin import IngestStandIn
from tests.integration.jobs.conftest import notebook
from tests.waiting import wait_until

FAST = {"poll_seconds": 0.02, "heartbeat_seconds": 0.05, "grace_seconds": 60.0}


@pytest.fixture
def job_id() -> str:
    return new_job_id()


@pytest.fixture
def standin(job_id: str) -> Iterator[IngestStandIn]:
    with IngestStandIn(job_id) as server:
        yield server


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "worker-job"
    folder.mkdir()
    return folder


class Harness:
    """A forwarder on its thread, the executor it signals, and a way to end it."""

    def __init__(self, standin: IngestStandIn, job_dir: Path, job_id: str) -> None:
        self.standin, self.job_dir, self.job_id = standin, job_dir, job_id
        self.executor = LocalProcessExecutor()
        self.children: list[subprocess.Popen[bytes]] = []
        self.forwarder: Forwarder | None = None

    def start(self, forward: bool = True, **settings: Any) -> Forwarder:
        client = IngestClient(self.standin.url, self.job_id, self.standin.token, timeout=5)
        self.forwarder = Forwarder(
            job_dir=self.job_dir, client=client, executor=self.executor, job_id=self.job_id,
            settings=ForwarderSettings.from_dict({**FAST, **settings}),
            placement={"worker": "tcp://10.0.0.7:4000", "host": "node-7",
                       "gpu_uuids": ["GPU-1"]}, forward=forward)
        self.forwarder.start()
        return self.forwarder

    def finish(self, timeout: float = 30) -> Forwarder:
        assert self.forwarder is not None
        self.forwarder.runner_exited()
        self.forwarder.join(timeout)
        assert not self.forwarder.is_alive()
        assert self.forwarder.error is None
        return self.forwarder

    def child(self, role: str = "runner") -> psutil.Process:
        """A real process in a session of its own, recorded as the job's ``role``."""
        popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                 start_new_session=True)
        self.children.append(popen)
        proc = psutil.Process(popen.pid)
        record = {"pid": popen.pid, "pgid": popen.pid, "create_time": proc.create_time()}
        if role == "runner":
            self.executor.adopt(self.job_id, self.job_dir, {"runner": record})
        else:  # as the runner reports its kernel: a runner.jsonl record
            self.append(RUNNER_FILE, json.dumps({"t": 0, "kind": role, **record}) + "\n")
        return proc

    def append(self, name: str, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        with (self.job_dir / name).open("ab") as handle:
            handle.write(data)

    def local(self, name: str) -> bytes:
        path = self.job_dir / name
        return path.read_bytes() if path.exists() else b""

    def arrived(self) -> bool:
        """The stand-in holds exactly the worker's stream files."""
        return all(bytes(self.standin.streams[n]) == self.local(n) for n in STREAMS)

    def close(self) -> None:
        if self.forwarder is not None and self.forwarder.is_alive():
            self.forwarder.runner_exited()
            self.standin.ended = True  # whatever the test left: the forwarder ends
            self.forwarder.join(10)
        for popen in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, 9)
            popen.wait(5)


@pytest.fixture
def harness(standin: IngestStandIn, job_dir: Path, job_id: str) -> Iterator[Harness]:
    h = Harness(standin, job_dir, job_id)
    yield h
    h.close()


def status(proc: psutil.Process) -> str:
    try:
        return proc.status()
    except psutil.NoSuchProcess:
        return "gone"


def ended(proc: psutil.Process) -> bool:
    return status(proc) in ("gone", psutil.STATUS_ZOMBIE)


# -- streams -------------------------------------------------------------------------------


def test_stream_bytes_arrive_exactly_once_through_cuts(harness: Harness,
                                                       standin: IngestStandIn) -> None:
    harness.start()
    harness.append(EVENTS_FILE, '{"kind": "metrics", "step": 1}\n{"kind": "met')  # partial
    harness.append(PAPERMILL_LOG, "epoch 1\r")
    harness.append(RUNNER_FILE, '{"kind": "cell_start", "index": 0}\n')
    wait_until(harness.arrived)

    standin.cut()  # connections dropped: nothing arrives, nothing is lost
    refused = standin.refused
    harness.append(EVENTS_FILE, 'rics", "step": 2}\n')
    harness.append(PAPERMILL_LOG, "epoch 2\n" * 1000)
    wait_until(lambda: standin.refused >= refused + 3)
    assert bytes(standin.streams[PAPERMILL_LOG]) == b"epoch 1\r"
    standin.restore()
    wait_until(harness.arrived)

    standin.fail_with(503)  # a server answering errors for a while
    harness.append(EVENTS_FILE, '{"kind": "metrics", "step": 3}\n')
    wait_until(lambda: standin.refused >= refused + 6)
    standin.restore()
    wait_until(harness.arrived)

    for name, line in ((PAPERMILL_LOG, "epoch 3\n"), (RUNNER_FILE, '{"kind": "x"}\n')):
        standin.drop_answers(1)  # written on the server, the answer lost: not doubled
        dropped, asked = standin.refused, len(standin.routes("GET", ""))
        harness.append(name, line)  # then it asks where the server stands (GET ingest)
        wait_until(lambda d=dropped, a=asked: standin.refused > d and harness.arrived()
                   and len(standin.routes("GET", "")) > a)

    standin.truncate(EVENTS_FILE, 10)  # the server lost a tail: 409 offset_mismatch
    harness.append(EVENTS_FILE, '{"kind": "metrics", "step": 4}\n')
    wait_until(lambda: standin.mismatches)
    harness.append(PAPERMILL_LOG, "the end\n")
    forwarder = harness.finish()

    assert forwarder.flushed
    for name in STREAMS:
        assert bytes(standin.streams[name]) == harness.local(name), name
    assert any(int(q["offset"]) > 10 for q in standin.routes("POST", f"/streams/{EVENTS_FILE}")
               ), "the truncated stream was resent from the server's size"
    # each cut is reported once the server answers again (the job's log, the jobs topic)
    notes = [n for beat in standin.heartbeats for n in beat.get("notes", [])]
    reconnected = [n for n in notes if n["kind"] == "reconnected"]
    assert len(reconnected) >= 2 and all(n["after_seconds"] >= 0 for n in reconnected)


def test_chunks_stay_under_the_chunk_size(harness: Harness, standin: IngestStandIn) -> None:
    data = os.urandom(10_000)
    harness.append(PAPERMILL_LOG, data)
    harness.start(chunk_bytes=1024)
    forwarder = harness.finish()
    assert forwarder.flushed and bytes(standin.streams[PAPERMILL_LOG]) == data
    offsets = [int(q["offset"]) for q in standin.routes("POST", f"/streams/{PAPERMILL_LOG}")]
    assert offsets == list(range(0, 10_000, 1024))


# -- whole files ---------------------------------------------------------------------------


def test_whole_files_arrive_with_their_sha256(harness: Harness, standin: IngestStandIn,
                                              job_dir: Path) -> None:
    (job_dir / OUTPUT).write_text('{"cells": [1]}')
    (job_dir / "checkpoints").mkdir()
    checkpoint = os.urandom(20_000)
    (job_dir / "checkpoints" / "epoch-1.pt").write_bytes(checkpoint)
    (job_dir / ".hidden.tmp").write_bytes(b"in progress")
    (job_dir / CONTROL_FILE).write_text('{"stop": true}')
    (job_dir / JOB_JSON).write_text("{}")
    harness.start(chunk_bytes=1000)
    wait_until(lambda: standin.files.get("checkpoints/epoch-1.pt") == checkpoint)
    assert standin.files[OUTPUT] == b'{"cells": [1]}'
    puts = standin.routes("PUT", "/files/checkpoints/epoch-1.pt")
    assert len(puts) >= 20  # in chunks, each naming the whole file's size and sha256
    assert {q["sha256"] for q in puts} == {hashlib.sha256(checkpoint).hexdigest()}
    assert {q["total"] for q in puts} == {"20000"}

    standin.drop_answers(1)  # a changed file, one answer lost mid-way: continued from the part
    (job_dir / OUTPUT).write_text('{"cells": [1, 2]}' + " " * 5000)
    wait_until(lambda: standin.files[OUTPUT].startswith(b'{"cells": [1, 2]}'))

    standin.lose_part_after(3)  # the server lost the part: 409 with its size, sent again
    model = os.urandom(9_000)
    (job_dir / "model.pt").write_bytes(model)
    forwarder = harness.finish()

    assert forwarder.flushed
    assert standin.mismatches and standin.files["model.pt"] == model
    assert standin.files[OUTPUT] == (job_dir / OUTPUT).read_bytes()
    assert set(standin.files) == {OUTPUT, "checkpoints/epoch-1.pt", "model.pt"}
    assert not standin.parts  # nothing hidden or owned by the server was sent


def test_the_final_flush_sends_a_file_written_at_the_end(harness: Harness,
                                                         standin: IngestStandIn,
                                                         job_dir: Path) -> None:
    harness.start(poll_seconds=30)  # no second look: only the flush can send it
    wait_until(lambda: standin.heartbeats)
    (job_dir / "metrics.csv").write_text("step,loss\n1,0.5\n")
    forwarder = harness.finish()
    assert forwarder.flushed
    assert standin.files["metrics.csv"] == b"step,loss\n1,0.5\n"


def test_large_files_go_through_resumable_uploads_through_cuts(
        harness: Harness, standin: IngestStandIn, job_dir: Path) -> None:
    model = os.urandom(50_000)
    (job_dir / "model.pt").write_bytes(model)
    (job_dir / "small.txt").write_text("under the threshold")
    standin.cut_next_patch(3000)  # a chunk cut off: 3000 of its bytes arrived
    harness.start(chunk_bytes=8000, upload_threshold_bytes=10_000)
    wait_until(lambda: standin.files.get("model.pt") == model)
    def creates() -> int:
        return sum(1 for m, r, _ in standin.requests if (m, r) == ("POST", "/uploads"))

    assert creates() == 1  # resumed, not started again
    assert standin.routes("HEAD", "/uploads/"), "the offset was asked after the cut"
    assert standin.mismatches == 0  # it went on from HEAD's offset
    assert len(standin.routes("PATCH", "/uploads/")) >= 7
    assert not standin.routes("PUT", "/files/model.pt")
    assert standin.routes("PUT", "/files/small.txt") and not standin.uploads

    newer = os.urandom(30_000)  # the server loses the upload mid-way: started again
    standin.cut_next_patch(5000, forget=True)
    (job_dir / "model.pt").write_bytes(newer)
    forwarder = harness.finish()
    assert forwarder.flushed and standin.files["model.pt"] == newer
    assert creates() == 3
    completes = [r for m, r, _ in standin.requests if m == "POST" and r.endswith("/complete")]
    assert len(completes) == 2 and not standin.uploads


# -- control -------------------------------------------------------------------------------


def test_a_stop_is_written_to_control_json(harness: Harness, standin: IngestStandIn,
                                           job_dir: Path) -> None:
    harness.start()
    wait_until(lambda: standin.heartbeats)
    assert not (job_dir / CONTROL_FILE).exists()
    stop = {"stop": True, "requested_at": 1.5, "reason": "stop requested"}
    standin.control["stop"] = stop
    wait_until(lambda: (job_dir / CONTROL_FILE).exists())
    assert json.loads((job_dir / CONTROL_FILE).read_text()) == stop


def test_paused_freezes_the_processes_and_unpaused_continues_them(
        harness: Harness, standin: IngestStandIn) -> None:
    runner = harness.child()
    kernel = harness.child("kernel")
    harness.start()
    standin.control["paused"] = True
    wait_until(lambda: status(runner) == status(kernel) == psutil.STATUS_STOPPED)
    standin.control["paused"] = False
    wait_until(lambda: psutil.STATUS_STOPPED not in (status(runner), status(kernel)))
    assert not ended(runner) and not ended(kernel)


def test_signal_term_ends_the_processes(harness: Harness, standin: IngestStandIn) -> None:
    runner = harness.child()
    kernel = harness.child("kernel")
    harness.start()
    wait_until(lambda: standin.heartbeats)
    standin.control["signal"] = "term"
    wait_until(lambda: ended(runner) and ended(kernel))


def test_unreachable_beyond_the_grace_stops_then_terminates(
        harness: Harness, standin: IngestStandIn, job_dir: Path) -> None:
    runner = harness.child()
    harness.start(grace_seconds=0.3, term_after_seconds=0.3)
    wait_until(lambda: standin.heartbeats)
    standin.cut()
    control = wait_until(lambda: (job_dir / CONTROL_FILE).exists() and json.loads(
        (job_dir / CONTROL_FILE).read_text()))
    assert control["stop"] is True and control["reason"] == "server unreachable"
    wait_until(lambda: ended(runner))


def test_job_ended_kills_the_runner(harness: Harness, standin: IngestStandIn) -> None:
    runner = harness.child()
    forwarder = harness.start()
    wait_until(lambda: standin.heartbeats)
    standin.ended = True
    forwarder.join(20)
    assert not forwarder.is_alive() and forwarder.ended_by_server and not forwarder.flushed
    wait_until(lambda: ended(runner))


def test_too_much_unsent_pauses_until_caught_up(harness: Harness,
                                                standin: IngestStandIn) -> None:
    runner = harness.child()
    harness.start(buffer_bytes=1000)
    wait_until(lambda: standin.heartbeats)
    standin.cut()
    harness.append(PAPERMILL_LOG, "x" * 2000)
    wait_until(lambda: status(runner) == psutil.STATUS_STOPPED)
    standin.restore()
    wait_until(lambda: status(runner) != psutil.STATUS_STOPPED and harness.arrived())


def test_heartbeats_say_where_the_job_runs(harness: Harness, standin: IngestStandIn) -> None:
    runner = harness.child()
    harness.start()
    beat = wait_until(lambda: standin.heartbeats and standin.heartbeats[-1])
    assert beat == {"worker": "tcp://10.0.0.7:4000", "host": "node-7",
                    "gpu_uuids": ["GPU-1"], "pid": runner.pid}


def test_a_shared_directory_is_not_forwarded_but_controlled(
        harness: Harness, standin: IngestStandIn, job_dir: Path) -> None:
    runner = harness.child()
    harness.append(EVENTS_FILE, '{"kind": "metrics"}\n')
    (job_dir / OUTPUT).write_text("{}")
    harness.start(forward=False)
    standin.control["paused"] = True
    wait_until(lambda: status(runner) == psutil.STATUS_STOPPED and len(standin.heartbeats) > 2)
    forwarder = harness.finish()
    assert forwarder.flushed and not standin.files
    assert not any(standin.streams.values())
    assert not standin.routes("POST", "/streams") and not standin.routes("PUT", "/files")


# -- run_remote_job ------------------------------------------------------------------------


def remote_spec(standin: IngestStandIn, job_id: str, tmp_path: Path,
                cells: list[str]) -> dict[str, Any]:
    """What the server's executor hands the task: the job's files, env, where to report."""
    submission = Submission(server_root=tmp_path, notebooks=tmp_path, runs_dir=tmp_path,
                            assets=None, kernel_names=None, gpu_uuids=list,
                            settings=SubmissionSettings(autosave_seconds=1,
                                                        kernel_start_timeout=120))
    job = submission.job_json({"id": job_id, "kind": "papermill", "name": "remote",
                               "kernel_name": "python3", "parameters": {}, "resolved": {}})
    return {
        "job_id": job_id,
        "files": {NOTEBOOK: nbformat.writes(notebook(cells)).encode(),
                  JOB_JSON: json.dumps(job).encode(), ENVIRONMENT: b"# packages\n",
                  "inputs/data.csv": b"x\n1\n"},
        "resume": {"name": "epoch-3.pt", "data": b"weights"},
        "env": {"PYTHONUNBUFFERED": "1"},
        "server_url": standin.url, "token": standin.token, "shared_dir": None,
        "settings": {"heartbeat_seconds": 0.5, "grace_seconds": 30.0, "poll_seconds": 0.1},
    }


@pytest.mark.timeout(180)
def test_run_remote_job_runs_a_notebook_and_forwards_it(standin: IngestStandIn, job_id: str,
                                                        tmp_path: Path) -> None:
    cells = ["import os, notebench\n"
             "assert open(os.environ['NOTEBENCH_RESUME_FROM'], 'rb').read() == b'weights'\n"
             "assert open('inputs/data.csv').read() == 'x\\n1\\n'",
             "notebench.report(step=1, total_steps=2, loss=0.5)\n"
             "notebench.report(step=2, total_steps=2, loss=0.25)\n"
             "open('artifact.txt', 'w').write('made remotely')\n"
             "print('hello from the worker')"]
    result = run_remote_job(remote_spec(standin, job_id, tmp_path, cells),
                            local_root=tmp_path / "worker")

    assert result["exit_code"] == 0 and result["flushed"] is True, result
    runner = [json.loads(line) for line in bytes(standin.streams[RUNNER_FILE]).splitlines()]
    assert runner[-1]["kind"] == "finished" and runner[-1]["status"] == "succeeded", runner
    events = [json.loads(line) for line in bytes(standin.streams[EVENTS_FILE]).splitlines()]
    assert [e["metrics"]["loss"] for e in events if e["kind"] == "metrics"] == [0.5, 0.25]
    assert b"hello from the worker" in bytes(standin.streams[PAPERMILL_LOG])
    output = nbformat.reads(standin.files[OUTPUT].decode(), as_version=4)
    assert "hello from the worker" in json.dumps(output.cells[-1].outputs)
    assert standin.files["artifact.txt"] == b"made remotely"
    assert set(standin.files) == {OUTPUT, "artifact.txt"}  # not the inputs, not the resume
    assert {b.get("pid") for b in standin.heartbeats} & {runner[0]["pid"]}
    assert not (tmp_path / "worker" / JOBS_FOLDER / job_id).exists()  # removed once sent


def test_a_retry_after_a_lost_worker_is_refused(standin: IngestStandIn, job_id: str,
                                                tmp_path: Path) -> None:
    standin.streams[RUNNER_FILE] += b'{"kind": "runner", "pid": 1}\n'  # the first run's
    result = run_remote_job(remote_spec(standin, job_id, tmp_path, ["1"]),
                            local_root=tmp_path / "worker")
    assert result["refused"] is True
    assert not (tmp_path / "worker" / JOBS_FOLDER).exists()
    standin.streams[RUNNER_FILE].clear()
    standin.ended = True
    assert run_remote_job(remote_spec(standin, job_id, tmp_path, ["1"]),
                          local_root=tmp_path / "worker")["refused"] is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_the_runner_dies_with_the_thread_that_started_it(standin: IngestStandIn,
                                                         job_id: str, tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a worker that dies takes its runner along."""
    from notebench.server.jobs.remote_runner import _die_with_parent

    started: list[int] = []

    def spawn() -> None:  # a thread that starts a child and ends, as a dying worker would
        popen = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                                 preexec_fn=_die_with_parent(), start_new_session=True)
        started.append(popen.pid)

    thread = threading.Thread(target=spawn)
    thread.start()
    thread.join()
    child = psutil.Process(started[0])
    try:
        wait_until(lambda: ended(child))
    finally:
        with contextlib.suppress(psutil.Error):
            child.kill()
