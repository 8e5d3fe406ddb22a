"""TensorBoard export read back with tensorboard's ``EventAccumulator``; a logdir written by
``torch.utils.tensorboard.SummaryWriter`` imported as notebench runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notebench.client import Client
from tests.server_process import ServerProcess

from .conftest import cli, raw_points

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator")


def read_run(folder: Path) -> Any:
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={
        event_accumulator.SCALARS: 0, event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def f32(value: float) -> float:
    import numpy as np

    return float(np.float32(value))


def test_export_tensorboard_reads_back_with_event_accumulator(
        server: ServerProcess, client: Client, job: dict[str, Any], tmp_path: Path) -> None:
    from tensorboard.plugins.hparams import metadata
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    logdir = tmp_path / "tb"
    for _ in range(2):  # a second export replaces the first
        result = cli(server, "export", "tensorboard", job["id"], str(logdir))
        assert result.returncode == 0, result.stderr
    folder = logdir / job["id"]
    assert result.stdout.split() == [str(folder)]
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1

    acc = read_run(folder)
    points = raw_points(client, job["id"])
    assert sorted(acc.Tags()["scalars"]) == sorted(points)
    for name, expected in points.items():
        got = [(e.step, e.wall_time, e.value) for e in acc.Scalars(name)]
        assert got == [(step, t, f32(value)) for step, t, value in expected], name
    assert [e.value for e in acc.Scalars("loss")] == [f32(1.0 / (i + 1)) for i in range(5)]

    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    start = HParamsPluginData.FromString(content[metadata.SESSION_START_INFO_TAG])
    hparams = start.session_start_info.hparams
    assert hparams["lr"].number_value == job["resolved_parameters"]["lr"] == 0.25
    assert hparams["label"].string_value == "a"
    assert json.loads(hparams["layers"].string_value) == [4, 2]
    text = acc.Tensors("parameters/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| lr | 0.25 |" in text


def test_export_tensorboard_of_an_unknown_job_is_one_line(server: ServerProcess,
                                                          tmp_path: Path) -> None:
    result = cli(server, "export", "tensorboard", "j-000000000000", str(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("notebench:") and "j-000000000000" in result.stderr
    assert not (tmp_path / "j-000000000000").exists()


def write_logdir(logdir: Path) -> dict[str, dict[str, list[tuple[int, float, float]]]]:
    """Two runs written by torch's SummaryWriter with known values and wall times; ``a``
    also has an hparams session. Returns ``{run: {tag: [(step, wall time, value)]}}``."""
    from torch.utils.tensorboard import SummaryWriter

    written: dict[str, dict[str, list[tuple[int, float, float]]]] = {}
    for run, scale in (("a", 1.0), ("b", 2.0)):
        writer = SummaryWriter(log_dir=str(logdir / run))
        series = written[run] = {"loss": [], "acc/val": []}
        for step in range(0, 40, 4):
            wall = 1_700_000_000.125 + step * 1.5 + scale
            for tag, value in (("loss", scale / (step + 1)), ("acc/val", step / 40 * scale)):
                writer.add_scalar(tag, value, step, walltime=wall)
                series[tag].append((step, wall, f32(value)))
        if run == "a":
            writer.add_hparams({"lr": 0.01, "batch_size": 32, "opt": "adam"},
                               {"hparam/best": 0.5}, run_name=".")
        writer.close()
    return written


def test_import_tensorboard_runs_compare_with_jobs(
        server: ServerProcess, client: Client, job: dict[str, Any], tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    written = write_logdir(logdir)

    result = cli(server, "import", "tensorboard", str(logdir), "--json")
    assert result.returncode == 0, result.stderr
    imported = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(imported) == {"a", "b"}
    assert not any(r["skipped"] for r in imported.values())

    for name, series in written.items():
        run_id = imported[name]["id"]
        status, run = server.request("GET", f"lifecycle/jobs/{run_id}")
        assert status == 200, run
        assert run["kind"] == "interactive" and run["state"] == "succeeded"
        assert run["name"] == name and run["tags"] == ["tensorboard"]
        points = raw_points(client, run_id)
        for tag, expected in series.items():
            assert points[tag] == expected, (name, tag)
    acc_a = read_run(logdir / "a")
    assert raw_points(client, imported["a"]["id"])["hparam/best"] == [
        (e.step, e.wall_time, e.value) for e in acc_a.Scalars("hparam/best")]
    status, run_a = server.request("GET", f"lifecycle/jobs/{imported['a']['id']}")
    assert run_a["parameters"] == {"lr": 0.01, "batch_size": 32, "opt": "adam"}

    ids = f"{imported['a']['id']},{imported['b']['id']},{job['id']}"
    status, table = server.request("GET", f"lifecycle/jobs/compare?ids={ids}")
    assert status == 200, table
    by_id = {j["id"]: j for j in table["jobs"]}
    assert by_id[imported["b"]["id"]]["metrics"]["loss"]["final"] == written["b"]["loss"][-1][2]
    assert by_id[job["id"]]["metrics"]["loss"]["final"] == 1.0 / 5
    assert "lr" in table["differing"]
    lr = next(p for p in table["parameters"] if p["name"] == "lr")
    assert lr["resolved"][imported["a"]["id"]] == 0.01 and lr["resolved"][job["id"]] == 0.25

    again = cli(server, "import", "tensorboard", str(logdir), "--json")
    assert again.returncode == 0, again.stderr
    second = {r["name"]: r for r in json.loads(again.stdout)}
    assert {r["id"] for r in second.values()} == {r["id"] for r in imported.values()}
    assert all(r["skipped"] for r in second.values())
    status, page = server.request("GET", "lifecycle/jobs?tag=tensorboard&limit=100")
    assert sorted(j["id"] for j in page["jobs"]) == sorted(r["id"] for r in imported.values())


def test_import_tensorboard_of_a_missing_folder_is_one_line(server: ServerProcess,
                                                            tmp_path: Path) -> None:
    result = cli(server, "import", "tensorboard", str(tmp_path / "nowhere"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"notebench: no folder {tmp_path / 'nowhere'}"
