"""The integration tests reuse the job tests' server, tiny notebooks and waiting; helpers to
follow a job's stream and compare saved weights with the trainer's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.integration.jobs.conftest import (  # noqa: F401 (fixtures)
    TERMINAL,
    _no_job_outlives_its_test,
    jobs_api,
    jobs_config,
    jp_server_config,
    wait_for,
    write_notebook,
)
from tests.sse_client import open_sse


async def open_job_stream(port: int, base_url: str, headers: dict[str, str], job_id: str):
    """The job's SSE stream (``lifecycle/jobs/<id>/stream``), opened."""
    stream = await open_sse(port, f"{base_url}notebench/api/lifecycle/jobs/{job_id}/stream",
                            headers=headers)
    assert stream.status == 200
    return stream


def streamed_points(stream: Any) -> list[dict[str, Any]]:
    """The metric points the stream's ``metrics`` events carried, in order."""
    return [p for f in stream.frames if f.event == "metrics" for p in f.data["data"]["points"]]


def events(job_dir: Path, kind: str) -> list[dict[str, Any]]:
    """The job's ``events.jsonl`` lines of ``kind``."""
    lines = (job_dir / "events.jsonl").read_bytes().splitlines()
    return [e for e in map(orjson.loads, lines) if e["kind"] == kind]


def assert_same_weights(loaded: dict[str, Any], reference: dict[str, Any]) -> None:
    """Every tensor of the trainer's state dict, equal in what was loaded back."""
    import torch

    assert set(loaded) == set(reference)
    for name, tensor in reference.items():
        assert torch.equal(loaded[name].cpu(), tensor.cpu()), name


async def stop_mid_training(jobs: Any, services: Any, path: str
                            ) -> tuple[dict[str, Any], Path, int]:
    """Submit a long fit (``jobs``: the ``jobs_api`` fixture), stop it once it passed
    step 5, and check it ended ``stopped`` before the cell after the fit, with one
    ``stopped-step-N`` checkpoint whose weights are the trainer's (``reference.pt``); the
    job, its directory and N."""
    import torch

    import notebench

    job = await jobs.submit(path, parameters={"epochs": 500, "delay": 0.01})

    async def training() -> dict[str, Any] | None:
        current = await jobs.get(job["id"])
        step = (current["progress"] or {}).get("step")
        return current if isinstance(step, int) and step >= 5 else None

    await wait_for(training, 120)
    await jobs.control(job["id"], "stop")
    stopped = await jobs.wait(job["id"], timeout=60)
    assert stopped["state"] == "stopped", (stopped["reason"], stopped["error"])
    job_dir = services.workspace.path / stopped["job_dir"]
    assert not (job_dir / "after.txt").exists(), "the cell after the fit ran"
    checkpoints = await services.jobs.checkpoints(job["id"])
    stop_checkpoint = [c for c in checkpoints if "stopped-step-" in c["path"]]
    assert len(stop_checkpoint) == 1
    step = int(stop_checkpoint[0]["path"].rsplit("-", 1)[1].removesuffix(".pt"))
    reference = torch.load(job_dir / "reference.pt", weights_only=True)
    assert_same_weights(notebench.load_model(job_dir, which="latest"), reference)
    return stopped, job_dir, step
