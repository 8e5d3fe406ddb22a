"""A server in its own process (the exports call it synchronously, as a notebook or a
terminal does) and one finished job that reported known values and saved a model."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notebench.client import Client
from tests.integration.widgets.tiny import serving, write_notebook
from tests.server_process import ServerProcess
from tests.synchronous import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from tests.waiting import wait_until

TRAIN = """
import notebench, torch
for step in range(steps):
    notebench.report(step=step * 10, total_steps=steps * 10, loss=1.0 / (step + 1),
                     accuracy=step / steps)
notebench.report(lr_seen=lr)  # no step: the point's index stands in
notebench.save_model({"w": torch.arange(6.0).reshape(2, 3) * lr}, "tiny-model",
                     metrics={"loss": 1.0 / steps})
"""
PARAMETERS = "steps: int = 5\nlr: float = 0.1\nlabel: str = 'a'\nlayers: list = [4, 2]"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("interop") / "root"
    with serving(root) as proc:
        write_notebook(root / "nbs" / "known.ipynb", [TRAIN], parameters=PARAMETERS)
        yield proc


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Client:
    return Client(server.url, server.token)


def ended(server: ServerProcess, job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status, job = server.request("GET", f"lifecycle/jobs/{job_id}")
        assert status == 200, job
        return job if job["state"] in ("succeeded", "failed", "stopped", "cancelled") else None

    return wait_until(done, timeout=180)


@pytest.fixture(scope="module")
def job(server: ServerProcess) -> dict[str, Any]:
    """The known job, ended ``succeeded`` with its model registered."""
    status, submitted = server.request("POST", "lifecycle/jobs", {
        "notebook": "nbs/known.ipynb", "parameters": {"lr": 0.25},
        "tags": ["interop", "known values"], "name": "known job"})
    assert status == 201, submitted
    done = ended(server, submitted["id"])
    assert done["state"] == "succeeded", done.get("error")

    def registered() -> dict[str, Any] | None:  # the model is linked just after the end
        status, job = server.request("GET", f"lifecycle/jobs/{submitted['id']}")
        assert status == 200, job
        return job if job["model"] else None

    done = wait_until(registered, timeout=30)
    assert done["model"]["path"].endswith(".safetensors"), done["model"]
    return done


def raw_points(client: Client, job_id: str) -> dict[str, list[tuple[int, float, float]]]:
    """The job's points as the API's CSV has them: ``{name: [(step or idx, t, value)]}``."""
    import notebench

    frame = notebench.jobs.get(job_id, client=client).metrics(long=True)
    out: dict[str, list[tuple[int, float, float]]] = {}
    for row in frame.itertuples():
        step = int(row.idx) if row.step != row.step else int(row.step)  # NaN: no step
        out.setdefault(row.name, []).append((step, float(row.t), float(row.value)))
    return out


def model_bytes(server: ServerProcess, job: dict[str, Any]) -> bytes:
    status, info = server.request("GET", "info")
    assert status == 200
    return (Path(info["workspace"]["path"]) / job["job_dir"] / job["model"]["path"]).read_bytes()


def cli(server: ServerProcess, *args: str, timeout: float = 180
        ) -> subprocess.CompletedProcess[str]:
    """``python -m notebench ARGS --url --token`` in a clean environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTEBENCH_")}
    command = [sys.executable, "-m", "notebench", *args, "--url", server.url,
               "--token", server.token]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=server.root_dir)
