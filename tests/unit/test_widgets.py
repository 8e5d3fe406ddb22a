"""Widget panels without a server: state in (REST answers, stream events), widgets out."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest

from notebench.client import ApiError
from notebench.jobprotocol import headline, progress_fraction
from notebench.sse import Event
from notebench.widgets import (
    ActiveJobs,
    AssetsPanel,
    CompareRuns,
    Dashboard,
    HardwarePanel,
    MonitoringDashboard,
    QuickStart,
)
from notebench.widgets.assets import UPLOAD_LIMIT
from notebench.widgets.jobs import headline_value, job_fraction


def event(topic: str, type_: str, data: dict[str, Any], event_id: int | None = None) -> Event:
    return Event(event_id, type_, {"id": event_id, "topic": topic, "type": type_,
                                   "ts": time.time(), "data": data}, topic)


def job(job_id: str = "j-000000000001", state: str = "running", **fields: Any) -> dict:
    """A job as the server answers it, with the fields it derives (fraction, headline)."""
    progress, latest = fields.pop("progress", {}), fields.pop("latest_metrics", {})
    return {"id": job_id, "name": f"run {job_id[-2:]}", "state": state, "created": 1.0,
            "updated": 1.0, "duration": 12.0,
            "progress": {**progress, "fraction": progress_fraction(progress, state)},
            "latest_metrics": latest, "headline": headline(latest),
            "artifact_count": 3, "parameters": {"lr": 0.1}, "resolved_parameters":
            {"lr": 0.1, "epochs": 3}, "trashed_at": None, **fields}


def progress_event(job_id: str, progress: dict[str, Any], event_id: int) -> Event:
    """A ``progress`` event as the tailer publishes it."""
    return event("jobs", "progress", {"job_id": job_id, "progress": {
        **progress, "fraction": progress_fraction(progress)}}, event_id)


def metrics_event(job_id: str, points: list[dict[str, Any]], event_id: int | None = None
                  ) -> Event:
    """A ``metrics`` event as the tailer publishes it (latest values and headline along)."""
    latest = {k: v for p in points for k, v in p["metrics"].items()}
    return event(f"job:{job_id}", "metrics", {"job_id": job_id, "points": points,
                                              "latest": latest, "headline": headline(latest)},
                 event_id)


# ------------------------------------------------------------------------------ helpers


def test_job_fraction_shows_the_servers_fraction():
    assert job_fraction(job(progress={"step": 4, "total_steps": 10})) == 0.4
    assert job_fraction(job(progress={"cell": 1, "cells": 4, "cell_state": "ok"})) == 0.5
    assert job_fraction(job(state="succeeded")) == 1.0
    assert job_fraction(job(state="queued")) == 0.0
    assert job_fraction({"state": "running", "progress": {"step": 4, "total_steps": 10}}) == 0.0


def test_headline_value_shows_the_servers_headline():
    shown = job(latest_metrics={"loss": 1.0, "val_loss": 2.0, "val_accuracy": 0.9})
    assert headline_value(shown, "loss") == 2.0
    assert headline_value(shown, "accuracy") == 0.9
    assert headline_value(job(latest_metrics={"epoch": 1}), "loss") is None
    nan = headline_value(job(latest_metrics={"loss": {"nonfinite": "nan"}}), "loss")
    assert nan != nan
    assert headline_value({"latest_metrics": {"loss": 1.0}}, "loss") is None


# ------------------------------------------------------------------------------ ActiveJobs


def test_active_jobs_rows_follow_state_progress_and_metrics_events():
    panel = ActiveJobs(live=False, actions=True)
    panel.load([job("j-000000000001", "running"), job("j-000000000002", "succeeded",
                                                      created=0.5)])
    assert len(panel.table.children) == 2
    row = panel.rows["j-000000000001"]
    assert "running" in row.state.value
    assert row.pause.layout.display == "" and row.resume.layout.display == "none"
    assert panel.feed_topics() == {"jobs", "job:j-000000000001"}

    panel.on_events([
        progress_event("j-000000000001", {"step": 2, "total_steps": 4, "epoch": 1,
                                          "eta_seconds": 90}, 10),
        metrics_event("j-000000000001", [
            {"t": 1.0, "step": 2, "metrics": {"loss": 0.25, "accuracy": 0.75}}], 11),
    ])
    assert row.progress.value == 0.5
    assert ">1m 30s<" in row.numbers["ETA"].value
    assert ">0.25<" in row.numbers["Loss"].value and ">0.75<" in row.numbers["Accuracy"].value
    assert ">1<" in row.numbers["Epoch"].value and ">3<" in row.numbers["Artifacts"].value

    paused = job("j-000000000001", "paused", progress={"step": 2, "total_steps": 4})
    panel.on_events([event("jobs", "state", {"job_id": paused["id"], "state": "paused",
                                             "job": paused}, 12)])
    assert "paused" in row.state.value
    assert row.pause.layout.display == "none" and row.resume.layout.display == ""
    assert row.stop.layout.display == ""

    done = job("j-000000000001", "succeeded")
    panel.on_events([event("jobs", "state", {"job_id": done["id"], "job": done}, 13)])
    assert row.progress.value == 1.0 and row.stop.layout.display == "none"
    assert panel.feed_topics() == {"jobs"}


def test_active_jobs_read_only_hides_every_action():
    panel = ActiveJobs(live=False, actions=False)
    panel.load([job(state="running")])
    row = panel.rows["j-000000000001"]
    assert {row.pause.layout.display, row.resume.layout.display, row.stop.layout.display} == \
        {"none"}
    assert row.details.layout.display != "none"
    assert panel.detail.clone_box.layout.display == "none"
    assert panel.control("j-000000000001", "pause") is None


def test_active_jobs_keeps_active_then_the_newest_ended():
    panel = ActiveJobs(live=False, recent=2)
    jobs = [job(f"j-00000000000{i}", "succeeded", created=float(i)) for i in range(5)]
    panel.load([*jobs, job("j-0000000000aa", "queued", created=0.0)])
    assert panel.visible_ids() == ["j-0000000000aa", "j-000000000004", "j-000000000003"]
    panel.on_events([event("jobs", "purged", {"job_id": "j-000000000004"})])
    assert "j-000000000004" not in panel.visible_ids()


def test_job_detail_collects_metrics_logs_and_clone_edits():
    panel = ActiveJobs(live=False)
    panel.load([job(state="running", load_snippet="notebench.load_model('x')",
                    model={"name": "m.safetensors"})])
    panel.detail.open(panel.jobs["j-000000000001"])
    panel.on_events([
        event("job:j-000000000001", "metrics", {"job_id": "j-000000000001", "points": [
            {"step": s, "metrics": {"loss": 1 / (s + 1)}} for s in range(5)]}),
        event("job:j-000000000001", "log", {"job_id": "j-000000000001",
                                            "lines": ["epoch 1 <ok>"]}),
    ])
    assert panel.detail.chart.points("loss") == 5
    assert "epoch 1 &lt;ok&gt;" in panel.detail.log.value
    assert "output.ipynb" in panel.detail.links.value
    assert "m.safetensors" in panel.detail.links.value
    assert "load_model" in panel.detail.links.value
    fields = {f.description: f for f in panel.detail.clone_fields.children}
    assert set(fields) == {"lr", "epochs"}
    fields["lr"].value = "0.5"
    assert panel.detail.clone_parameters() == {"lr": 0.5}


# ------------------------------------------------------------------------------ monitoring


def sample(ts: float, cpu: float, gpus: list | None = None) -> dict[str, Any]:
    return {"ts": ts, "cpu": {"percent": cpu}, "memory": {"percent": 40.0,
                                                           "used_bytes": 2**30},
            "network": {"rx_bytes_per_second": 10.0, "tx_bytes_per_second": 5.0},
            "gpus": gpus or [], "gpu_status": {"reason": "no driver"}}


def test_monitoring_charts_slide_and_alerts_and_logs_render():
    panel = MonitoringDashboard(live=False, window=60)
    now = time.time()
    panel.on_events([event("monitoring", "sample", sample(now - 119.5 + i, 10.0 + i))
                     for i in range(121)])
    assert panel.cpu_chart.points("cpu") == 61  # the last 60 s only
    assert panel.memory_chart.points("memory") == 61
    assert panel.network_chart.points("rx") == 61 and panel.network_chart.points("tx") == 61
    assert "no driver" in panel.gpu_note.value
    assert "130.0%" in panel.summary.value

    panel.on_events([event("monitoring", "sample", sample(now + 1, 5.0, gpus=[
        {"index": 0, "utilization_percent": 77}]))])
    assert panel.gpu_chart.points("gpu0") == 1 and panel.gpu_note.value == ""

    alert = {"id": "a" * 16, "state": "firing", "severity": "warning", "rule": "memory_high",
             "message": "memory at 95%", "updated": now}
    log = {"ts": now, "level": "error", "source": "jobs", "message": "job <x> failed"}
    panel.on_events([event("alerts", "alert", alert, 5), event("logs", "log", log, 6),
                     event("logs", "log", log, 6)])
    assert "memory_high" in panel.alerts_html.value and "firing" in panel.alerts_html.value
    assert panel.logs_html.value.count("job &lt;x&gt; failed") == 1
    assert "nb-level-error" in panel.logs_html.value


def test_monitoring_history_fills_the_window_without_duplicates():
    panel = MonitoringDashboard(live=False, window=300)
    now = time.time()
    history = {"series": [{"name": "cpu_percent", "labels": {}, "t": [now - 3, now - 2],
                           "value": [1.0, 2.0]}]}
    panel.load_history(history)
    panel.load_history(history)
    panel.on_events([event("monitoring", "sample", sample(now - 2, 2.0))])
    panel.on_events([event("monitoring", "sample", sample(now - 1, 3.0))])
    assert [v for _t, v in panel.history["cpu"]] == [1.0, 2.0, 3.0]


# ------------------------------------------------------------------------------ other panels


TEMPLATE = {"name": "train_tabular", "description": "an MLP", "estimated_seconds": 95.0,
            "runs": 2, "parameters": [
                {"name": "epochs", "types": ["int"], "default": 10},
                {"name": "lr", "types": ["float"], "default": 0.003},
                {"name": "batch_size", "types": ["int", "str"], "default": "auto"},
                {"name": "precision", "types": ["str"], "default": "auto"},
                {"name": "optimizer", "types": ["str"], "default": "adam",
                 "choices": ["adam", "sgd"]}]}
SETTINGS = {"batch_size": {"value": 64, "reason": ""}, "precision": {"value": "32",
                                                                      "reason": ""}}


def test_quick_start_prefills_from_recommendations_and_sends_changes_only():
    panel = QuickStart(live=False, defaults={"train_tabular": {"epochs": 1}})
    panel.load([TEMPLATE], SETTINGS, [job(state="succeeded", updated=5.0)])
    fields = panel.fields
    assert fields["epochs"].value == 1 and fields["lr"].value == 0.003
    assert fields["batch_size"].value == "64" and fields["precision"].value == "32"
    assert list(fields["optimizer"].options) == ["adam", "sgd"]
    assert "1m 35s" in panel.estimate.value and "2 earlier runs" in panel.estimate.value
    assert "succeeded" in panel.recent_html.value
    fields["lr"].value = 0.01
    assert panel.parameters() == {"epochs": 1, "lr": 0.01, "batch_size": 64, "precision": "32"}
    panel.on_events([event("jobs", "state", {"job": job("j-0000000000ff", "running",
                                                         updated=9.0)})])
    assert panel.recent_html.value.index("running") < panel.recent_html.value.index(
        "succeeded")


def test_compare_runs_overlays_curves_and_marks_differing_parameters():
    panel = CompareRuns(live=False)
    compared = {
        "jobs": [{"id": "j-00000000000a", "name": "a", "metrics": {"loss": {"best": 0.1}}},
                 {"id": "j-00000000000b", "name": "b", "metrics": {"loss": {"best": 0.2}}}],
        "parameters": [
            {"name": "lr", "resolved": {"j-00000000000a": 0.1, "j-00000000000b": 0.2},
             "differs": True},
            {"name": "epochs", "resolved": {"j-00000000000a": 3, "j-00000000000b": 3},
             "differs": False}],
        "metrics": ["acc", "loss"], "differing": ["lr"]}
    series = {"runs": [{"job_id": j, "series": [{"name": "loss", "buckets": [
        {"x": s, "last": 1.0 / (s + 1)} for s in range(4)]}]}
        for j in ("j-00000000000a", "j-00000000000b")]}
    panel.load(compared, series)
    assert panel.metric.value == "loss"
    assert len(panel.chart.lines) == 2
    assert all(panel.chart.points(n) == 4 for n in panel.chart.lines)
    html = panel.params_html.value
    assert html.count('class="nb-differs"') == 1
    assert html.index("nb-differs") < html.index("<code>lr</code>") < html.index("epochs")


def test_assets_panel_tabs_tables_trash_and_the_upload_limit():
    panel = AssetsPanel(live=False, actions=True)
    digest = "ab" * 32
    asset = {"id": "0123456789abcdef", "name": "train.csv", "size": 2048, "sha256": digest,
             "format": "csv", "kind": "file", "tags": ["tab"], "category": "datasets"}
    trashed = {**asset, "id": "fedcba9876543210", "name": "old.csv"}
    roots = {"roots": [{"category": "models"}, {"category": "datasets"}], "import_dirs": []}
    panel.load(roots, {"models": [], "datasets": [asset]}, [trashed])
    assert panel.tabs.titles == ("Models", "Datasets")
    assert "train.csv" in panel.tabs.children[1].value
    assert digest in panel.tabs.children[1].value and "2.0 KiB" in panel.tabs.children[1].value
    assert "assets/download/0123456789abcdef" in panel.tabs.children[1].value
    panel.tabs.selected_index = 1
    assert panel.pick.options[0][1] == asset["id"]
    assert panel.trash_pick.options == (("old.csv", trashed["id"]),)
    assert "import_dirs" in panel.import_box.children[0].value

    big = {"name": "big.bin", "size": UPLOAD_LIMIT + 1, "type": "", "content":
           memoryview(b"x"), "last_modified": datetime.datetime.now(datetime.timezone.utc)}
    panel.upload.value = (big,)
    assert "nb-error" in panel.message.value and "8.0 MiB" in panel.message.value
    assert panel.upload.value == ()


def test_hardware_panel_shows_profile_scores_and_recommendations():
    panel = HardwarePanel(live=False)
    profile = {"cpu": {"model": "Test CPU", "effective_cores": 2, "logical_cores": 4},
               "memory": {"effective_total_bytes": 8 * 2**30}, "gpus": [],
               "gpu_status": {"reason": "no driver"}, "torch": {"version": "2.13.0"}}
    panel.load(profile, {"settings": {"batch_size": {"value": 32, "reason": "fits"}}},
               {"state": "done", "result": {"cpu": {"matmul_gflops": 12.5}}})
    assert "Test CPU" in panel.profile_html.value and "8.0 GiB" in panel.profile_html.value
    assert "no driver" in panel.profile_html.value
    assert "cpu.matmul_gflops" in panel.benchmark_html.value
    assert "batch_size" in panel.recommend_html.value and "fits" in panel.recommend_html.value
    panel.on_events([event("hardware", "benchmark.started", {"state": "running",
                                                             "result": None})])
    assert "running" in panel.benchmark_html.value


# ------------------------------------------------------------------------------ look


def test_rtl_persian_dashboard_lays_out_right_to_left():
    board = Dashboard(live=False, direction="rtl", lang="fa")
    assert "nb-rtl" in board._dom_classes
    assert board.bar.options[0][0] == "کارهای فعال"
    jobs = board["ActiveJobs"]
    assert "nb-rtl" in jobs._dom_classes
    monitoring = board["MonitoringDashboard"]
    axis = monitoring.cpu_chart.figure.axes[1]
    assert axis.orientation == "vertical" and axis.side == "right"
    assert monitoring.cpu_chart.figure.axes[0].orientation == "horizontal"
    assert monitoring.cpu_chart.figure.fig_margin["right"] > \
        monitoring.cpu_chart.figure.fig_margin["left"]


def test_direction_must_be_known():
    with pytest.raises(ValueError, match="direction"):
        ActiveJobs(live=False, direction="up")


def test_dashboard_makes_tabs_when_shown_and_keeps_others_off_stage():
    board = Dashboard(live=False)
    assert list(board.panels) == ["ActiveJobs"]
    board.bar.value = 2  # monitoring
    monitoring = board.panels["MonitoringDashboard"]
    assert monitoring.shown and "nb-offstage" not in board.slots[2]._dom_classes
    assert "nb-offstage" in board.slots[0]._dom_classes
    board.bar.value = 0
    assert not monitoring.shown and "nb-offstage" in board.slots[2]._dom_classes
    now = time.time()
    monitoring.on_events([event("monitoring", "sample", sample(now, 50.0))])
    assert monitoring.cpu_chart.points("cpu") == 0  # not drawn while away...
    board.bar.value = 2
    assert monitoring.cpu_chart.points("cpu") == 1  # ...but caught up on return


# ------------------------------------------------------------------------------ cluster


REMOTE_RUNNER = {"pid": None, "executor": "dask", "worker": "tcp://10.0.0.2:4000",
                 "host": "gpu-node-1", "gpu_uuids": ["GPU-aaaa", "GPU-bbbb"]}


def cluster(**fields: Any) -> dict[str, Any]:
    """``GET lifecycle/cluster`` as a Dask executor answers it."""
    return {"executor": "dask", "problem": None, "scheduler": "tcp://10.0.0.1:8786",
            "queued": 3, "workers": [
                {"address": "tcp://10.0.0.2:4000", "host": "gpu-node-1", "name": "gpu-<a>",
                 "threads": 4, "memory_limit": 8 * 2**30, "resources": {"GPU": 1},
                 "jobs": ["j-000000000001"], "tasks": 1},
                {"address": "tcp://10.0.0.3:4000", "host": "cpu-node",
                 "name": "tcp://10.0.0.3:4000", "threads": 8, "memory_limit": None,
                 "resources": {}, "jobs": [], "tasks": 0}], **fields}


class ScriptedClient:
    """Answers GETs from a table (a callable answer is called); records the paths."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.paths: list[str] = []

    def get(self, path: str, **_kwargs: Any) -> Any:
        self.paths.append(path)
        answer = self.answers[path]
        return answer() if callable(answer) else answer


def test_hardware_panel_shows_the_cluster_only_when_jobs_run_on_one():
    panel = HardwarePanel(live=False)
    panel.load_cluster({"executor": "local", "workers": [], "queued": 0})
    assert panel.cluster_box.layout.display == "none" and panel.cluster_html.value == ""
    assert panel.feed_topics() == {"hardware"}

    panel.load_cluster(cluster())
    assert panel.cluster_box.layout.display == "flex"
    html = panel.cluster_html.value
    assert "tcp://10.0.0.1:8786" in html and ">3<" in html  # scheduler, queued tasks
    assert "gpu-&lt;a&gt; (gpu-node-1)" in html and 'title="tcp://10.0.0.2:4000"' in html
    assert "8.0 GiB" in html and "GPU 1" in html and "j-000000000001" in html
    assert "<td>cpu-node</td>" not in html and ">cpu-node</span>" in html  # host, not address
    assert "nb-cluster-problem" not in html
    assert panel.feed_topics() == {"hardware", "jobs"}  # its jobs start and end there

    panel.load_cluster({"executor": "local", "workers": [], "queued": 0,
                        "problem": "cannot reach the Dask scheduler"})
    assert panel.cluster_box.layout.display == "flex"
    assert "nb-cluster-problem" in panel.cluster_html.value
    assert "No workers connected." in panel.cluster_html.value


def test_hardware_panel_reads_the_cluster_again_when_a_job_changes_state():
    answers = iter([cluster(queued=2), cluster(queued=0, workers=[])])
    client = ScriptedClient({"hardware": {}, "hardware/recommendations": {},
                             "hardware/benchmark": {},
                             "lifecycle/cluster": lambda: next(answers)})
    panel = HardwarePanel(live=False, client=client)
    panel.refresh()
    assert ">2<" in panel.cluster_html.value and "gpu-node-1" in panel.cluster_html.value
    panel.on_events([progress_event("j-000000000001", {"step": 1}, 1)])
    assert client.paths.count("lifecycle/cluster") == 1  # progress changes no placement
    panel.on_events([event("jobs", "state", {"job_id": "j-000000000001",
                                             "job": job(state="succeeded")}, 2)])
    assert client.paths.count("lifecycle/cluster") == 2
    assert "No workers connected." in panel.cluster_html.value


def test_hardware_panel_without_the_cluster_route_shows_no_cluster():
    def refused() -> Any:
        raise ApiError(404, "not_found", "no such route")

    client = ScriptedClient({"hardware": {}, "hardware/recommendations": {},
                             "hardware/benchmark": {}, "lifecycle/cluster": refused})
    panel = HardwarePanel(live=False, client=client)
    panel.refresh()
    assert panel.cluster_box.layout.display == "none"
    assert panel.feed_topics() == {"hardware"}


def test_jobs_say_where_a_remote_job_runs_and_nothing_for_a_local_one():
    panel = ActiveJobs(live=False)
    remote = job("j-000000000001", processes={"runner": REMOTE_RUNNER})
    local = job("j-000000000002", created=0.5, processes={"runner": {"pid": 42}})
    panel.load([remote, local])
    assert "runs on gpu-node-1" in panel.rows["j-000000000001"].name.value
    assert "runs on" not in panel.rows["j-000000000002"].name.value

    panel.detail.open(panel.jobs["j-000000000002"])
    assert "runs on" not in panel.detail.header.value
    panel.detail.open(panel.jobs["j-000000000001"])
    header = panel.detail.header.value
    assert "runs on gpu-node-1" in header and "GPU-aaaa, GPU-bbbb" in header
    assert 'title="tcp://10.0.0.2:4000"' in header

    # a job queued on the cluster is placed when its worker first reports
    queued = job("j-000000000003", "queued", created=2.0,
                 processes={"runner": {"pid": None, "executor": "dask"}})
    panel.load([queued])
    panel.detail.open(panel.jobs["j-000000000003"])
    assert "runs on" not in panel.detail.header.value
    placed = job("j-000000000003", created=2.0, updated=2.0, processes={"runner": {
        "pid": None, "executor": "dask", "worker": "tcp://10.0.0.3:4000"}})
    panel.on_events([event("jobs", "state", {"job_id": placed["id"], "job": placed}, 3)])
    assert "runs on tcp://10.0.0.3:4000" in panel.detail.header.value
    assert "GPUs" not in panel.detail.header.value
