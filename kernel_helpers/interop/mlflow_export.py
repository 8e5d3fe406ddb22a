"""Jobs as MLflow runs: ``export_mlflow(job_ids, tracking_uri)``.

Each job becomes one run of ``experiment`` (created when missing) through MLflow's
``MlflowClient``: its parameters as resolved (text: strings as they are, other values as
JSON), every metric series with its steps and timestamps (milliseconds), tags (the job's
tags, ``notebench.job_id``, ``notebench.state``, ``notebench.name``) and its registered
model file under the artifact path ``model/``. Needs ``pip install 'notebench[interop]'``.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..client import Client
from . import _source

__all__ = ["export_mlflow", "mlflow_key"]

DEFAULT_EXPERIMENT = "notebench"
BATCH = 1000  # MLflow's most metrics per log_batch (its MAX_METRICS_PER_BATCH)
PARAMS_PER_BATCH = 100  # its most params (or tags) per call
MAX_PARAM_LENGTH = 6000  # its longest param value
MAX_TAG_LENGTH = 8000
MAX_KEY_LENGTH = 250
_BAD_KEY_CHARACTER = re.compile(r"[^/\w.\- ]")

# notebench's final states as MLflow's run statuses (a job still running stays RUNNING)
STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "stopped": "KILLED",
          "cancelled": "KILLED"}


def mlflow_key(name: str) -> str:
    """``name`` as a valid MLflow key: characters MLflow refuses become ``_``, and the key
    never reads as another path (no leading ``/``, empty, ``.`` or ``..`` parts)."""
    key = _BAD_KEY_CHARACTER.sub("_", name)
    parts = ["_" if part in ("", ".", "..") else part for part in key.split("/")]
    return "/".join(parts)[:MAX_KEY_LENGTH] or "_"


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:MAX_PARAM_LENGTH]


def _ms(seconds: Any) -> int | None:
    return round(seconds * 1000) if isinstance(seconds, (int, float)) else None


def _tags(job: dict[str, Any], renamed: dict[str, str]) -> dict[str, str]:
    tags = {"notebench.job_id": str(job["id"]), "notebench.state": str(job.get("state")),
            "notebench.name": str(job.get("name")), "notebench.kind": str(job.get("kind"))}
    job_tags = [str(t) for t in job.get("tags") or []]
    if job_tags:
        tags["notebench.tags"] = json.dumps(job_tags)[:MAX_TAG_LENGTH]
    for tag in job_tags:  # each tag its own key, filterable as tags.`<tag>` = 'true'
        tags.setdefault(mlflow_key(tag), "true")
    notebook = (job.get("notebook") or {}).get("path") or job.get("template")
    if notebook:
        tags["notebench.notebook"] = str(notebook)
    if job.get("notes"):
        tags["mlflow.note.content"] = str(job["notes"])[:MAX_TAG_LENGTH]
    if renamed:
        tags["notebench.renamed_keys"] = json.dumps(renamed)[:MAX_TAG_LENGTH]
    return tags


def _export_one(ml: Any, experiment_id: str, client: Client,
                job_id: str) -> str:
    from mlflow.entities import Metric, Param, RunTag

    job = client.get(f"lifecycle/jobs/{job_id}")
    renamed: dict[str, str] = {}

    def key(name: str) -> str:
        out = mlflow_key(name)
        if out != name:
            renamed[out] = name
        return out

    params = [Param(key(name), _param_text(value))
              for name, value in _source.parameters(job).items()]
    metrics = [Metric(key(name), point.value, _ms(point.t), point.step)
               for name, points in _source.metric_series(client, job_id).items()
               for point in points]
    tags = [RunTag(k, v) for k, v in _tags(job, renamed).items()]
    run = ml.create_run(experiment_id, start_time=_ms(job.get("started") or job.get("created")),
                        run_name=str(job.get("name") or job_id))
    run_id = run.info.run_id
    try:
        for i in range(0, len(params), PARAMS_PER_BATCH):
            ml.log_batch(run_id, params=params[i:i + PARAMS_PER_BATCH])
        for i in range(0, len(tags), PARAMS_PER_BATCH):
            ml.log_batch(run_id, tags=tags[i:i + PARAMS_PER_BATCH])
        for i in range(0, len(metrics), BATCH):
            ml.log_batch(run_id, metrics=metrics[i:i + BATCH])
        with tempfile.TemporaryDirectory(prefix="notebench-mlflow-") as tmp:
            model = _source.model_file(client, job, Path(tmp))
            if model is not None:
                ml.log_artifact(run_id, str(model), artifact_path="model")
    except BaseException:
        ml.set_terminated(run_id, "FAILED")
        raise
    status = STATUS.get(str(job.get("state")))
    if status is not None:
        ml.set_terminated(run_id, status, end_time=_ms(job.get("ended")))
    return str(run_id)


def export_mlflow(job_ids: str | Iterable[Any], tracking_uri: str, *,
                  experiment: str = DEFAULT_EXPERIMENT,
                  client: Client | None = None) -> list[str]:
    """Export jobs (ids, ``Job`` objects) as runs of MLflow's ``experiment`` at
    ``tracking_uri``; returns the MLflow run ids, in the jobs' order.

    Every metric point is exported (the raw points, not the charts' buckets); a job
    without a step gets its point's index as the step. Names MLflow refuses are made
    valid (``mlflow_key``) and the originals kept in the ``notebench.renamed_keys`` tag.
    Each call makes new runs. A file store (``file:///path``) needs
    ``MLFLOW_ALLOW_FILE_STORE=true`` with MLflow releases that put it in maintenance mode.
    """
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise ImportError("export_mlflow needs MLflow: pip install 'notebench[interop]'",
                          name="mlflow") from exc
    c = _source.client_of(client)
    ml = MlflowClient(tracking_uri=tracking_uri)
    found = ml.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else ml.create_experiment(
        experiment)
    return [_export_one(ml, experiment_id, c, job_id)
            for job_id in _source.job_ids(job_ids)]
