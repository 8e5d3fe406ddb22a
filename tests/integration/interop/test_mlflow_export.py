"""``notebench.jobs.export_mlflow`` read back with MLflow's own client (a file store)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from notebench.client import Client
from tests.server_process import ServerProcess

from .conftest import model_bytes, raw_points

mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's opt-in to a file store
    return (tmp_path / "mlruns").as_uri()


def test_export_mlflow_round_trip(server: ServerProcess, client: Client, job: dict[str, Any],
                                  tracking_uri: str, tmp_path: Path) -> None:
    import notebench

    run_ids = notebench.jobs.export_mlflow([job["id"]], tracking_uri, experiment="exported",
                                           client=client)
    assert len(run_ids) == 1
    ml = mlflow.MlflowClient(tracking_uri=tracking_uri)
    run = ml.get_run(run_ids[0])
    assert ml.get_experiment(run.info.experiment_id).name == "exported"
    assert run.info.run_name == "known job"
    assert run.info.status == "FINISHED"
    assert run.info.start_time == round(job["started"] * 1000)
    assert run.info.end_time == round(job["ended"] * 1000)

    resolved = job["resolved_parameters"]
    assert resolved["lr"] == 0.25 and resolved["layers"] == [4, 2]
    assert run.data.params == {name: value if isinstance(value, str) else json.dumps(value)
                               for name, value in resolved.items()}

    tags = run.data.tags
    assert tags["notebench.job_id"] == job["id"]
    assert tags["notebench.state"] == "succeeded"
    assert tags["notebench.name"] == "known job"
    assert json.loads(tags["notebench.tags"]) == job["tags"] == ["interop", "known values"]
    assert tags["interop"] == tags["known values"] == "true"

    points = raw_points(client, job["id"])
    assert [v for _s, _t, v in points["loss"]] == [1.0 / (i + 1) for i in range(5)]
    assert set(run.data.metrics) == set(points)
    for name, expected in points.items():
        history = ml.get_metric_history(run_ids[0], name)
        got = [(m.step, m.timestamp, m.value) for m in history]
        assert got == [(step, round(t * 1000), value) for step, t, value in expected], name
    assert [m.step for m in ml.get_metric_history(run_ids[0], "loss")] == [0, 10, 20, 30, 40]
    assert [m.step for m in ml.get_metric_history(run_ids[0], "lr_seen")] == [0]

    artifacts = [a.path for a in ml.list_artifacts(run_ids[0], "model")]
    model_name = Path(job["model"]["path"]).name
    assert artifacts == [f"model/{model_name}"]
    local = ml.download_artifacts(run_ids[0], f"model/{model_name}", str(tmp_path / "dl"))
    assert Path(local).read_bytes() == model_bytes(server, job)


def test_export_mlflow_refuses_what_is_not_a_job_id(client: Client, tracking_uri: str) -> None:
    import notebench

    with pytest.raises(ValueError, match="not a job id"):
        notebench.jobs.export_mlflow(["../etc"], tracking_uri, client=client)
    with pytest.raises(notebench.jobs.ApiError) as raised:
        notebench.jobs.export_mlflow("j-000000000000", tracking_uri, client=client)
    assert raised.value.status == 404


def test_export_mlflow_cli_prints_the_run_ids(server: ServerProcess, job: dict[str, Any],
                                              tracking_uri: str) -> None:
    from .conftest import cli

    result = cli(server, "export", "mlflow", job["id"], "--tracking-uri", tracking_uri,
                 "--json")
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)[job["id"]]
    run = mlflow.MlflowClient(tracking_uri=tracking_uri).get_run(run_id)
    assert run.data.tags["notebench.job_id"] == job["id"]
    assert run.info.experiment_id and run.data.metrics.keys() >= {"loss", "accuracy"}
