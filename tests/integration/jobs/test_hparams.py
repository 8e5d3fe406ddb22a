"""A job's recorded hyperparameters (``hparams`` events) reach its row, the job object and
compare, under the job's own notebook parameters; a bad event is ignored with a warning;
a restarted server keeps what it read."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from tests.integration.test_kernel_side import run_in_kernel
from tests.server_process import ServerProcess
from tests.waiting import wait_until

from .conftest import TERMINAL, notebook, wait_for

PARAMETERS = "lr: float = 0.1\nwidth: int = 8\ngate: bool = False"
TRAIN = """
import os, time
import notebench
from notebench import tracking
tracking.emit("hparams", hparams={"lr": 0.5, "batch_size": 32, "optimizer": "adam",
                                  "model/width": width})
while gate and not os.path.exists("release"):
    time.sleep(0.05)
tracking.emit("hparams", hparams={"batch_size": width * 8, "seed": 7})
tracking.emit("hparams", hparams={"dropout": 0.1, "": 1})  # bad: an empty name
tracking.emit("hparams", hparams=[1, 2])  # bad: not names and values
notebench.report(step=0, loss=lr)
"""
COMPARE = """
import json, notebench
result = notebench.jobs.compare(["{a}", "{b}"])
frame = result.frame
print(json.dumps({"columns": list(frame.columns), "differing": result.differing,
                  "rows": frame.reset_index().to_dict(orient="records")}, default=str))
"""


async def test_hparams_events_become_the_jobs_hparams_and_compare_as_parameters(
        jp_serverapp, write_notebook, jobs_api, api, services):
    path = write_notebook("hparams", [TRAIN], PARAMETERS)
    first = await jobs_api.submit(path, parameters={"lr": 0.2, "gate": True})
    job_dir = services.workspace.root("artifacts") / "jobs" / first["id"]
    before = {"lr": 0.5, "batch_size": 32, "optimizer": "adam", "model/width": 8}

    async def live_hparams() -> dict | None:
        job = await jobs_api.get(first["id"])
        return job if job["hparams"] == before else None

    running = await wait_for(live_hparams, 60)
    assert running["state"] == "running"
    (job_dir / "release").write_text("")
    second = await jobs_api.submit(path, parameters={"width": 4})
    a = await jobs_api.wait(first["id"])
    b = await jobs_api.wait(second["id"])
    assert a["state"] == b["state"] == "succeeded", (a["error"], b["error"])

    # merged, a later event updating an earlier one; the bad events changed nothing
    assert a["hparams"] == {"lr": 0.5, "batch_size": 64, "optimizer": "adam",
                            "model/width": 8, "seed": 7}
    assert b["hparams"] == {"lr": 0.5, "batch_size": 32, "optimizer": "adam",
                            "model/width": 4, "seed": 7}
    # the notebook's own parameters are untouched
    assert a["parameters"] == {"lr": 0.2, "gate": True}
    assert a["resolved_parameters"] == {"lr": 0.2, "width": 8, "gate": True}
    stored = await services.jobs.repository.row(a["id"])
    assert stored["hparams"] == a["hparams"]

    for job in (a, b):
        records = await jobs_api.logs(job["id"], source="jobs")
        ignored = [r["message"] for r in records if r["level"] == "warning"
                   and "hparams event was ignored" in r["message"]]
        assert len(ignored) == 2, records
        assert "non-empty string" in ignored[0] and "must be a dict" in ignored[1]

    table = (await api("GET", "lifecycle/jobs/compare",
                       params={"ids": f"{a['id']},{b['id']}"})).body
    rows = {p["name"]: p for p in table["parameters"]}
    assert list(rows) == ["lr", "width", "gate", "batch_size", "optimizer", "model/width",
                          "seed"]
    # a parameter given to (or defaulted in) the job wins over a recorded one
    assert rows["lr"]["resolved"] == {a["id"]: 0.2, b["id"]: 0.1}
    assert rows["batch_size"]["resolved"] == {a["id"]: 64, b["id"]: 32}
    assert rows["batch_size"]["given"] == {}
    assert rows["model/width"]["resolved"] == {a["id"]: 8, b["id"]: 4}
    assert table["differing"] == ["lr", "width", "gate", "batch_size", "model/width"]
    assert [j["hparams"] for j in table["jobs"]] == [a["hparams"], b["hparams"]]

    code = COMPARE.replace("{a}", a["id"]).replace("{b}", b["id"])
    result = json.loads((await run_in_kernel(jp_serverapp, code)).strip().splitlines()[-1])
    assert result["differing"] == table["differing"]
    params = [c for c in result["columns"] if c.startswith("params.")]
    assert params == [f"params.{name}" for name in rows]
    one, two = result["rows"]
    assert (one["params.lr"], two["params.lr"]) == (0.2, 0.1)
    assert (one["params.batch_size"], two["params.batch_size"]) == (64, 32)
    assert one["params.optimizer"] == two["params.optimizer"] == "adam"
    assert one["params.seed"] == two["params.seed"] == 7


GATED = """
import os, time
from notebench import tracking
tracking.emit("hparams", hparams={"batch_size": 32, "optimizer": "adam"})
while not os.path.exists(release):
    time.sleep(0.05)
tracking.emit("hparams", hparams={"batch_size": 64, "seed": 7})
"""


def test_a_restarted_server_keeps_the_hparams_it_read(tmp_path: Path):
    root = tmp_path / "root"
    (root / "nbs").mkdir(parents=True)
    nbformat.write(notebook([GATED], "release: str = ''"), root / "nbs" / "gated.ipynb")
    release = tmp_path / "release"
    server = ServerProcess(root, extra=["--NotebenchJobService.tick_seconds=0.2"]).start()
    try:
        status, job = server.request("POST", "lifecycle/jobs", {
            "notebook": "nbs/gated.ipynb", "parameters": {"release": str(release)}})
        assert status == 201, job

        def current() -> dict:
            status, body = server.request("GET", f"lifecycle/jobs/{job['id']}")
            assert status == 200, body
            return body

        first = {"batch_size": 32, "optimizer": "adam"}
        assert wait_until(lambda: current()["hparams"] == first, 60)
        server.kill()  # the first event's offset is stored: the next server reads on from it
        server.start()
        adopted = current()
        assert adopted["state"] == "running" and adopted["hparams"] == first, adopted
        release.write_text("")
        done = wait_until(lambda: (j := current())["state"] in TERMINAL and j, 90)
        assert done["state"] == "succeeded", done
        assert done["hparams"] == {"batch_size": 64, "optimizer": "adam", "seed": 7}
    finally:
        server.stop()
