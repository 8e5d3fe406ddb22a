"""Training jobs from an ordinary notebook: submit, follow, compare, sweep, reuse.

Everything goes through the server's API (``notebench.Client``); nothing here runs
inside a training kernel. pandas and tqdm are imported when a function needs them.

>>> import notebench
>>> job = notebench.jobs.submit("train_mlp", lr=1e-3, epochs=3)
>>> job.wait()                      # a progress bar (tqdm's notebook bar in Jupyter)
>>> job.metrics().plot()
>>> sweep = notebench.jobs.sweep("train_mlp", grid={"lr": [1e-3, 1e-2], "batch_size": [32, 64]})
>>> result = notebench.jobs.compare(sweep.jobs)   # .frame: params.<name>, metrics.<name>.best
>>> result.frame[result.differing_columns]
"""

from __future__ import annotations

import builtins
import io
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import ApiError, Client
from .interop.mlflow_export import export_mlflow
from .jobprotocol import SUCCEEDED, TERMINAL

__all__ = ["Comparison", "Job", "Sweep", "compare", "export_mlflow", "get", "list", "metrics",
           "submit", "sweep"]

_OPTIONS = ("name", "tags", "priority", "resources", "timeout", "kernel_name", "retries")

_client: Client | None = None


def _default_client(client: Client | None) -> Client:
    global _client
    if client is not None:
        return client
    if _client is None:
        _client = Client()
    return _client


def _job_id(job: Job | str | dict[str, Any]) -> str:
    if isinstance(job, Job):
        return job.id
    if isinstance(job, dict):
        return str(job["id"])
    return str(job)


class Job:
    """A job on the server; ``data`` is its last known state (``refresh()`` updates it)."""

    def __init__(self, data: dict[str, Any], client: Client | None = None) -> None:
        self.data = data
        self.client = _default_client(client)

    # -- reading ---

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def name(self) -> str:
        return str(self.data.get("name"))

    @property
    def state(self) -> str:
        return str(self.data.get("state"))

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    def __repr__(self) -> str:
        return f"Job({self.id!r}, name={self.name!r}, state={self.state!r})"

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def refresh(self) -> Job:
        self.data = self.client.get(f"lifecycle/jobs/{self.id}")
        return self

    def metrics(self, names: Iterable[str] | None = None, *, long: bool = False) -> Any:
        """Every point reported so far as a pandas DataFrame.

        Wide by default: one row per step, one column per metric (the last value of a
        step when there are several); ``long=True``: the raw points (name, idx, step, t,
        value). Non-finite values are NaN/inf.
        """
        import pandas as pd

        params = {"format": "csv"}
        if names:
            params["names"] = ",".join(names)
        text = self.client.get(f"lifecycle/jobs/{self.id}/metrics", params=params)
        if isinstance(text, bytes):
            text = text.decode()
        frame = pd.read_csv(io.StringIO(text or "name,idx,step,t,value\n"))
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
        if long:
            return frame
        if frame.empty:
            return pd.DataFrame(index=pd.Index([], name="step"))
        frame["step"] = frame["step"].fillna(frame["idx"]).astype("int64")
        wide = frame.pivot_table(index="step", columns="name", values="value", aggfunc="last",
                                 dropna=False)
        wide.columns.name = None
        return wide

    def output(self) -> Any:
        """The executed notebook so far (an ``nbformat.NotebookNode``)."""
        import nbformat

        data = self.client.get(f"lifecycle/jobs/{self.id}/output")
        return nbformat.from_dict(data)

    def artifacts(self) -> builtins.list[dict[str, Any]]:
        return self.client.get(f"lifecycle/artifacts/{self.id}")["files"]

    def logs(self, **params: Any) -> builtins.list[dict[str, Any]]:
        return self.client.get(f"lifecycle/jobs/{self.id}/logs", params=params)["records"]

    # -- waiting ---

    def wait(self, timeout: float | None = None, *, progress: bool = True,
             poll: float = 0.5) -> Job:
        """Wait until the job ends (or ``timeout`` seconds); returns the job.

        Shows a progress bar (``tqdm.auto``: the notebook bar in Jupyter) of the job's
        steps when it reports ``total_steps``, else of its cells.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = None
        try:
            while True:
                self.refresh()
                if progress:
                    bar = self._draw(bar)
                if self.done:
                    return self
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {self.id} is still {self.state} after "
                                       f"{timeout:g}s")
                time.sleep(poll)
        finally:
            if bar is not None:
                bar.close()

    def _draw(self, bar: Any) -> Any:
        from tqdm.auto import tqdm

        info = self.data.get("progress") or {}
        total, done, unit = info.get("total_steps"), info.get("step"), "step"
        if isinstance(total, int) and total > 0:
            done = done if isinstance(done, int) else 0  # ``step`` counts the steps done
        else:
            total, unit = info.get("cells"), "cell"
            cell = info.get("cell")
            done = (cell + (info.get("cell_state") != "running")) if isinstance(
                cell, int) else 0
        if bar is None or (total and bar.total != total) or bar.unit != unit:
            if bar is not None:
                bar.close()
            bar = tqdm(total=total or None, desc=self.name, unit=unit, leave=True)
        if self.done and total:
            done = total if self.state == SUCCEEDED else done
        bar.n = min(done or 0, total or (done or 0))
        postfix = {"state": self.state}
        eta = info.get("eta_seconds")
        if isinstance(eta, (int, float)):
            postfix["eta"] = f"{eta:.0f}s"
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()
        return bar

    # -- control ---

    def _control(self, action: str, **body: Any) -> dict[str, Any]:
        return self.client.post(f"lifecycle/jobs/{self.id}/control",
                                json={"action": action, **body})

    def pause(self) -> Job:
        self.data = self._control("pause")
        return self

    def resume(self) -> Job:
        self.data = self._control("resume")
        return self

    def stop(self) -> Job:
        self.data = self._control("stop")
        return self

    def cancel(self) -> Job:
        self.data = self._control("cancel")
        return self

    def restart(self, **params: Any) -> Job:
        """A new job resuming from this one's last checkpoint (stopped or failed jobs)."""
        body = {"parameters": params} if params else {}
        return Job(self._control("restart", **body), self.client)

    def clone(self, **params: Any) -> Job:
        """A new job from this one's notebook snapshot and parameters, ``params`` overriding."""
        return submit(self, **params, client=self.client)

    # -- tidying ---

    def update(self, **fields: Any) -> Job:
        """Change ``name``, ``notes``, ``starred`` or ``tags``."""
        self.data = self.client.patch(f"lifecycle/jobs/{self.id}", json=fields)
        return self

    def star(self, starred: bool = True) -> Job:
        return self.update(starred=starred)

    def delete(self) -> Job:
        """Move the job to the trash (refused while it runs)."""
        self.data = self.client.delete(f"lifecycle/jobs/{self.id}")
        return self

    def restore(self) -> Job:
        self.data = self.client.post(f"lifecycle/trash/{self.id}/restore")
        return self

    # -- the model ---

    def load_model(self, model: Any = None, **kwargs: Any) -> Any:
        """``notebench.load_model(job id, model)``."""
        from .models import load_model

        return load_model(self.id, model, client=self.client, **kwargs)


class Sweep:
    """A group of jobs, one per combination of a grid."""

    def __init__(self, data: dict[str, Any], client: Client | None = None) -> None:
        self.data = data
        self.client = _default_client(client)
        self.jobs = [Job(j, self.client) for j in data.get("jobs") or []]

    @property
    def id(self) -> str:
        return str(self.data["id"])

    def __repr__(self) -> str:
        return f"Sweep({self.id!r}, jobs={len(self.jobs)})"

    def refresh(self) -> Sweep:
        data = self.client.get(f"lifecycle/sweeps/{self.id}")
        self.data = {**data, "jobs": [j.refresh().data for j in self.jobs]}
        return self

    def wait(self, timeout: float | None = None, *, progress: bool = True,
             poll: float = 0.5) -> Sweep:
        """Wait for every job (a bar of finished jobs)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(self.jobs), desc=self.data.get("name"), unit="job")
        try:
            while True:
                for job in self.jobs:
                    if not job.done:
                        job.refresh()
                finished = sum(j.done for j in self.jobs)
                if bar is not None:
                    bar.n = finished
                    bar.refresh()
                if finished == len(self.jobs):
                    return self
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"sweep {self.id}: {finished} of {len(self.jobs)} "
                                       "jobs ended")
                time.sleep(poll)
        finally:
            if bar is not None:
                bar.close()

    def compare(self) -> Comparison:
        """``compare(self.jobs)``."""
        return compare(self.jobs, client=self.client)


# -- module functions ---------------------------------------------------------------------------


def _notebook_reference(client: Client, source: str) -> dict[str, str]:
    """``{"notebook": path under the server root}`` (a notebook or a percent-format
    ``.py`` script) or ``{"template": name}``."""
    if source.endswith((".ipynb", ".py")) or "/" in source or os.sep in source:
        path = Path(source).expanduser()
        root = client.server.root_dir
        if not path.is_absolute() and root and not (Path(root) / path).exists() and \
                path.exists():
            path = path.resolve()  # relative to this kernel's folder, not the server's root
        if path.is_absolute() and root:
            try:
                return {"notebook": path.resolve().relative_to(Path(root).resolve()).as_posix()}
            except ValueError:
                raise ValueError(f"{source} is not under the server's root {root}") from None
        return {"notebook": path.as_posix()}
    return {"template": source}


def _split(kwargs: dict[str, Any], params: dict[str, Any] | None
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    options = {k: kwargs.pop(k) for k in _OPTIONS if k in kwargs and kwargs[k] is not None}
    for k in _OPTIONS:
        kwargs.pop(k, None)
    return options, {**(params or {}), **kwargs}


def _source_reference(c: Client, template_or_path: str | Job) -> dict[str, Any]:
    """What a new job runs: another job's snapshot (``from_job``) or a notebook."""
    if isinstance(template_or_path, Job) or (
            isinstance(template_or_path, str) and _looks_like_job_id(template_or_path)):
        return {"from_job": _job_id(template_or_path)}
    return _notebook_reference(c, str(template_or_path))


def submit(template_or_path: str | Job, params: dict[str, Any] | None = None, *,
           client: Client | None = None, **kwargs: Any) -> Job:
    """Queue a job: a template name, a notebook (or percent-format ``.py``) path, or a
    ``Job`` (clone with edits).

    Keyword arguments are the notebook's parameters, except ``name``, ``tags``,
    ``priority``, ``resources``, ``timeout``, ``kernel_name`` and ``retries`` (times a
    job lost with its cluster worker is submitted again), which are options of the job
    (pass parameters with those names in ``params={...}``).
    """
    c = _default_client(client)
    options, parameters = _split(dict(kwargs), params)
    body = {**_source_reference(c, template_or_path), **options}
    if parameters:
        body["parameters"] = parameters
    return Job(c.post("lifecycle/jobs", json=body), c)


def sweep(template_or_path: str | Job, grid: dict[str, Iterable[Any]],
          params: dict[str, Any] | None = None, *, client: Client | None = None,
          **kwargs: Any) -> Sweep:
    """One job per combination of ``grid`` (``{"lr": [1e-3, 1e-2], "batch_size": [32, 64]}``).

    The other keyword arguments are fixed parameters and job options, as for ``submit``.
    """
    c = _default_client(client)
    options, parameters = _split(dict(kwargs), params)
    body = {**_source_reference(c, template_or_path), **options}
    body["grid"] = {k: builtins.list(v) for k, v in grid.items()}
    if parameters:
        body["parameters"] = parameters
    return Sweep(c.post("lifecycle/sweeps", json=body), c)


def get(job_id: str, *, client: Client | None = None) -> Job:
    c = _default_client(client)
    return Job(c.get(f"lifecycle/jobs/{job_id}"), c)


def list(state: str | Iterable[str] | None = None, tag: str | None = None, *,
         sweep: str | Sweep | None = None, starred: bool | None = None,
         sort: str | None = None, limit: int = 100, client: Client | None = None
         ) -> builtins.list[Job]:
    """Jobs, newest first (``sort=`` as in ``GET lifecycle/jobs``)."""
    c = _default_client(client)
    params: dict[str, Any] = {"limit": limit, "tag": tag, "sort": sort, "starred": starred}
    if state is not None:
        params["state"] = state if isinstance(state, str) else ",".join(state)
    if sweep is not None:
        params["sweep_id"] = sweep.id if isinstance(sweep, Sweep) else sweep
    page = c.get("lifecycle/jobs", params=params)
    return [Job(j, c) for j in page["jobs"]]


@dataclass(frozen=True)
class Comparison:
    """What ``compare()`` returns: the table, and which parameters differ between the runs.

    ``frame``: a pandas DataFrame, one row per job (index ``id``) with MLflow-style
    columns: ``name``, ``state``, ``duration`` (seconds), ``model``, then
    ``params.<name>`` for each parameter (as resolved; with the hyperparameters the job's
    kernel recorded, ``job["hparams"]``, where the notebook has no parameter of that name)
    and ``metrics.<name>.final`` and ``metrics.<name>.best`` for each metric.
    ``differing``: the names (without ``params.``) of the parameters whose values differ,
    in the notebooks' order; ``differing_columns`` are their columns. Shown in Jupyter as its frame.
    """

    frame: Any
    differing: builtins.list[str]
    metrics: builtins.list[str]

    @property
    def differing_columns(self) -> builtins.list[str]:
        return [PARAMS_PREFIX + name for name in self.differing]

    def __repr__(self) -> str:
        return f"{self.frame!r}\ndiffering: {self.differing}"

    def _repr_html_(self) -> str | None:
        html = getattr(self.frame, "_repr_html_", None)
        return html() if html is not None else None


PARAMS_PREFIX = "params."
METRICS_PREFIX = "metrics."


def compare(jobs: Iterable[Job | str], *, client: Client | None = None,
            modes: dict[str, str] | None = None) -> Comparison:
    """Runs side by side (jobs and interactive runs): a ``Comparison``.

    ``result.frame`` has one row per job and the columns ``name``, ``state``,
    ``duration``, ``model``, ``params.<name>`` and ``metrics.<name>.final`` /
    ``metrics.<name>.best`` (``modes={"acc": "max"}`` says which way a metric is
    better where its name does not); ``result.differing`` names the parameters whose
    values differ (``result.frame[result.differing_columns]``).
    """
    import pandas as pd

    c = _default_client(client)
    ids = [_job_id(j) for j in jobs]
    params: dict[str, Any] = {"ids": ",".join(ids)}
    if modes:
        params["modes"] = ",".join(f"{k}:{v}" for k, v in modes.items())
    table = c.get("lifecycle/jobs/compare", params=params)
    columns = ["id", "name", "state", "duration", "model"]
    columns += [PARAMS_PREFIX + p["name"] for p in table["parameters"]]
    for name in table["metrics"]:
        columns += [f"{METRICS_PREFIX}{name}.final", f"{METRICS_PREFIX}{name}.best"]
    records = []
    for job in table["jobs"]:
        model = job.get("model") or {}
        record: builtins.list[Any] = [job["id"], job["name"], job["state"], job["duration"],
                                      model.get("asset_id") or model.get("name")]
        record += [p["resolved"].get(job["id"]) for p in table["parameters"]]
        for name in table["metrics"]:
            summary = job["metrics"].get(name) or {}
            record += [summary.get("final"), summary.get("best")]
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=columns).set_index("id")
    return Comparison(frame, builtins.list(table["differing"]), builtins.list(table["metrics"]))


def metrics(jobs: Iterable[Job | str], names: Iterable[str] | None = None, *,
            max_points: int = 1000, client: Client | None = None) -> Any:
    """Several runs' series on one step axis (downsampled) as a long DataFrame.

    Columns: ``job_id``, ``name``, ``step`` (a bucket's first step), ``last``, ``mean``,
    ``min``, ``max``, ``count``.
    """
    import pandas as pd

    c = _default_client(client)
    params: dict[str, Any] = {"ids": ",".join(_job_id(j) for j in jobs),
                              "max_points": max_points, "layout": "columns"}
    if names:
        params["names"] = ",".join(names)
    data = c.get("lifecycle/jobs/metrics", params=params)
    fields = ("last", "mean", "min", "max", "count")
    table: dict[str, list[Any]] = {k: [] for k in ("job_id", "name", "step", *fields)}
    for run in data["runs"]:
        for series in run["series"]:
            columns = series["columns"]
            table["job_id"] += [run["job_id"]] * len(columns["x"])
            table["name"] += [series["name"]] * len(columns["x"])
            table["step"] += columns["x"]
            for field in fields:
                table[field] += columns[field]
    return pd.DataFrame(table, columns=[*table])


def _looks_like_job_id(text: str) -> bool:
    import re

    return re.fullmatch(r"[jr]-[0-9a-f]{12}", text) is not None


__all__ += ["ApiError"]
