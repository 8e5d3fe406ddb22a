"""``Submission`` without a server: a request becomes a checked job row and directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nbformat
import orjson
import pytest

from notebench.jobprotocol import ENVIRONMENT, JOB_JSON, NOTEBOOK
from notebench.server.errors import ApiError
from notebench.server.jobs.submission import Submission, SubmissionSettings, submission_options

NO_ASSET = {"data": "/dev/null"}  # an absolute path that exists: no registry needed
PARAMETERS = "lr: float = 0.1\nsteps: int = 10\ndata = 'train.csv'  # asset: datasets\n"


@pytest.fixture
def desk(tmp_path: Path) -> Submission:
    root = tmp_path / "root"
    (root / "nbs").mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    cell = nbformat.v4.new_code_cell(PARAMETERS)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("print(lr)")]
    nbformat.write(nb, root / "nbs" / "train.ipynb")
    (tmp_path / "train.csv").write_text("x\n1\n")
    return Submission(server_root=root.resolve(), notebooks=tmp_path / "templates",
                      runs_dir=tmp_path / "runs", assets=None,
                      kernel_names=lambda: ["python3"], gpu_uuids=lambda: ["GPU-a"],
                      settings=SubmissionSettings(default_timeout=60.0, autosave_seconds=5))


def _row(desk: Submission, body: dict) -> dict:
    async def run() -> dict:
        source, template = await desk.source_of(body)
        return await desk.job_row(source, submission_options(body, 60.0), template=template)

    return asyncio.run(run())


def _refusal(desk: Submission, body: dict) -> ApiError:
    with pytest.raises(ApiError) as caught:
        _row(desk, body)
    assert caught.value.status == 400
    return caught.value


def test_a_request_becomes_a_queued_row_and_a_job_directory(desk: Submission,
                                                             tmp_path: Path) -> None:
    data = str(tmp_path / "train.csv")  # an absolute path needs no registry
    row = _row(desk, {"notebook": "nbs/train.ipynb", "parameters": {"lr": 0.5, "data": data},
                      "resources": {"gpus": 1, "cpus": 2}, "tags": ["a", "a"]})
    assert row["state"] == "queued" and row["kind"] == "papermill"
    assert row["notebook_path"] == "nbs/train.ipynb" and row["kernel_name"] == "python3"
    assert row["resolved"] == {"lr": 0.5, "steps": 10, "data": data}
    assert row["resources"] == {"gpus": 1, "cpus": 2}
    assert row["tags"] == ["a"] and row["timeout"] == 60.0
    assert Path(row["job_dir"]) == tmp_path / "runs" / row["id"]

    source = asyncio.run(desk.source_of({"notebook": "nbs/train.ipynb"}))[0]
    asyncio.run(desk.write_job_dir(row, source))
    job_dir = Path(row["job_dir"])
    assert (job_dir / NOTEBOOK).read_bytes() == source.data
    assert "python" in (job_dir / ENVIRONMENT).read_text()
    job_json = orjson.loads((job_dir / JOB_JSON).read_bytes())
    assert job_json["id"] == row["id"] and job_json["autosave_seconds"] == 5


@pytest.mark.parametrize(("body", "code"), [
    ({"notebook": "nbs/train.ipynb", "parameters": {"lr": "fast"}}, "invalid_parameters"),
    ({"notebook": "nbs/train.ipynb", "parameters": {"nope": 1}}, "invalid_parameters"),
    ({"notebook": "nbs/train.ipynb", "kernel_name": "julia", "parameters": NO_ASSET},
     "unknown_kernel"),
    ({"notebook": "nbs/train.ipynb", "resources": {"gpus": 2}, "parameters": NO_ASSET},
     "invalid_resources"),
    ({"notebook": "nbs/train.ipynb", "resources": {"gpus": ["GPU-b"]},
      "parameters": NO_ASSET}, "invalid_resources"),
    ({"notebook": "nbs/missing.ipynb"}, "unknown_notebook"),
    ({"notebook": "nbs/train.ipynb", "template": "x"}, "invalid_request"),
])
def test_every_problem_is_a_400_with_its_code(desk: Submission, body: dict, code: str) -> None:
    assert _refusal(desk, body).code == code


def test_an_asset_parameter_needs_the_registry(desk: Submission) -> None:
    error = _refusal(desk, {"notebook": "nbs/train.ipynb", "parameters": {"data": "train"}})
    assert error.code == "invalid_parameters"
    assert "asset registry" in error.message


def test_pinned_gpus_are_kept_by_uuid(desk: Submission) -> None:
    row = _row(desk, {"notebook": "nbs/train.ipynb", "resources": {"gpus": ["GPU-a"]},
                      "parameters": NO_ASSET})
    assert row["resources"] == {"gpu_uuids": ["GPU-a"], "gpus": 1, "pinned": True}
