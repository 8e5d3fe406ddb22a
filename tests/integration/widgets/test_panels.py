"""Panels against a real server: real jobs, real SSE, real uploads and imports."""

from __future__ import annotations

import datetime
import hashlib

from notebench.widgets import (
    ActiveJobs,
    AssetsPanel,
    CompareRuns,
    Dashboard,
    MonitoringDashboard,
    QuickStart,
)
from tests.integration.widgets.tiny import job_state, start_server, submit, wait_until


def test_dashboard_follows_a_job_from_queue_to_success(server, client, panels):
    board = Dashboard(client=client)
    panels.append(board)
    jobs: ActiveJobs = board["ActiveJobs"]
    board.feed.start()
    wait_until(lambda: board.feed.status == "live", 30)
    job = submit(server, steps=6, delay=0.25)
    row = wait_until(lambda: jobs.rows.get(job["id"]), 30)
    assert wait_until(lambda: f"job:{job['id']}" in board.feed._topics, 30)
    seen: list[float] = []

    def finished() -> bool:
        seen.append(row.progress.value)
        return "succeeded" in row.state.value

    wait_until(finished, 90, 0.05)
    assert 0 < min(v for v in seen if v > 0) < 1.0 and row.progress.value == 1.0
    assert ">0.1667<" in row.numbers["Loss"].value  # the last report: 1 / 6
    assert ">0.8333<" in row.numbers["Accuracy"].value and ">2<" in row.numbers["Epoch"].value
    # the job's topic was followed while it ran, and dropped when it ended
    wait_until(lambda: f"job:{job['id']}" not in board.feed._topics, 10)
    assert board.feed.connections >= 2
    recent = board["QuickStart"]
    wait_until(lambda: job["id"][-4:] in recent.recent_html.value or
               "succeeded" in recent.recent_html.value, 10)


def test_pause_resume_and_stop_from_the_panel(server, client, panels):
    jobs = ActiveJobs(client=client, actions=True)
    panels.append(jobs)
    job = submit(server, steps=400, delay=0.05)
    wait_until(lambda: job_state(server, job["id"]) == "running", 60)
    row = wait_until(lambda: jobs.rows.get(job["id"]), 30)
    wait_until(lambda: "running" in row.state.value, 30)
    row.pause.click()
    assert job_state(server, job["id"]) == "paused"
    wait_until(lambda: row.resume.layout.display == "" and row.pause.layout.display == "none")
    row.resume.click()
    assert job_state(server, job["id"]) == "running"
    row.stop.click()
    wait_until(lambda: job_state(server, job["id"]) == "stopped", 60)
    wait_until(lambda: "stopped" in row.state.value, 10)


def test_details_show_metrics_log_and_clone_with_edits(server, client, panels):
    job = submit(server, steps=4, delay=0.0)
    wait_until(lambda: job_state(server, job["id"]) == "succeeded", 60)
    jobs = ActiveJobs(client=client)
    panels.append(jobs)
    jobs.show_details(job["id"])
    assert jobs.detail.chart.points("loss") == 4
    assert "trained 4 steps" in jobs.detail.log.value
    assert f"lifecycle/artifacts/{job['id']}/output.ipynb" in jobs.detail.links.value
    fields = {f.description: f for f in jobs.detail.clone_fields.children}
    fields["steps"].value = "2"
    clone = jobs.detail.clone()
    assert clone["cloned_from"] == job["id"] and clone["parameters"]["steps"] == 2
    wait_until(lambda: job_state(server, clone["id"]) == "succeeded", 60)


def test_reconnects_without_a_gap_when_the_server_closes_every_stream(server, client, panels):
    monitoring = MonitoringDashboard(client=client)
    panels.append(monitoring)
    feed = monitoring.feed
    wait_until(lambda: feed.status == "live" and monitoring.samples > 0, 30)
    statuses: list[str] = []
    original = monitoring.on_status
    monitoring.on_status = lambda s, d: (statuses.append(s), original(s, d))  # type: ignore
    status, closed = server.request("POST", "_test/close_streams")
    assert status == 200 and closed["closed"] >= 1
    wait_until(lambda: feed.status == "reconnecting", 10, 0.02)
    # written while the panel is away: the replay must bring every one of them
    status, _ = server.request("POST", "_test/log", {"message": "while away", "count": 5})
    assert status == 200
    wait_until(lambda: feed.status == "live", 30)
    wait_until(lambda: monitoring.logs_html.value.count("while away") == 5, 10)
    assert 'data-status="live"' in monitoring.indicator.widget.value
    assert "reconnecting" in statuses and statuses[-1] == "live"
    before = monitoring.samples
    wait_until(lambda: monitoring.samples > before, 10)  # samples flow again


def test_upload_from_the_browser_widget_arrives_with_its_sha256(server, client, panels):
    assets = AssetsPanel(client=client, actions=True)
    panels.append(assets)
    assets.tabs.selected_index = assets.categories.index("datasets")
    content = b"x,y\n" + b"1,2\n" * 5000
    assets.upload.value = ({"name": "widget-upload.csv", "type": "text/csv",
                            "size": len(content), "content": memoryview(content),
                            "last_modified": datetime.datetime.now(datetime.timezone.utc)},)
    listed = client.get("assets/list/datasets", params={"name": "widget-upload"})["items"]
    assert [a["sha256"] for a in listed] == [hashlib.sha256(content).hexdigest()]
    assert "widget-upload.csv" in assets.tabs.children[assets.tabs.selected_index].value
    assert "nb-error" not in assets.message.value


def test_import_picks_from_the_configured_folder_only(server, client, panels, import_dir):
    assets = AssetsPanel(client=client, actions=True)
    panels.append(assets)
    assets.tabs.selected_index = assets.categories.index("datasets")
    chooser = assets.chooser
    assert chooser is not None and chooser.sandbox_path == str(import_dir)
    chooser.reset(path=str(import_dir), filename="table.csv")
    chooser._apply_selection()
    assert chooser.selected == str(import_dir / "table.csv")
    assets.import_button.click()
    listed = client.get("assets/list/datasets", params={"name": "table"})["items"]
    expected = hashlib.sha256((import_dir / "table.csv").read_bytes()).hexdigest()
    assert [a["sha256"] for a in listed] == [expected]
    asset_id = listed[0]["id"]
    assets.pick.value = asset_id
    assets.delete_button.click()
    assert asset_id in [a["id"] for a in client.get("assets/trash")["items"]]
    assets.trash_pick.value = asset_id
    assets.restore_button.click()
    assert client.get(f"assets/{asset_id}")["state"] == "present"


def test_quick_start_starts_a_template_with_its_form(server, client, panels):
    quick = QuickStart(client=client, defaults={"tiny_train": {"steps": 2, "delay": 0.0}})
    panels.append(quick)
    quick.template.value = "tiny_train"
    assert quick.fields["steps"].value == 2
    quick.fields["lr"].value = 0.5
    job = quick.start()
    assert job is not None and job["parameters"] == {"steps": 2, "delay": 0.0, "lr": 0.5}
    assert wait_until(lambda: job_state(server, job["id"]) == "succeeded", 60)
    templates = {t["name"]: t for t in client.get("lifecycle/templates")["templates"]}
    assert templates["tiny_train"]["runs"] >= 1


def test_compare_runs_of_two_finished_jobs(server, client, panels):
    first, second = submit(server, steps=3, delay=0.0, lr=0.1), submit(server, steps=3,
                                                                        delay=0.0, lr=0.2)
    for job in (first, second):
        wait_until(lambda j=job: job_state(server, j["id"]) == "succeeded", 60)
    compare = CompareRuns(client=client)
    panels.append(compare)
    compare.compare([first["id"], second["id"]])
    assert compare.metric.value == "loss"
    assert len(compare.chart.lines) == 2
    assert all(compare.chart.points(name) == 3 for name in compare.chart.lines)
    html = compare.params_html.value
    assert '<tr class="nb-differs"><td><code>lr</code>' in html


def test_panels_say_the_server_went_away(tmp_path, panels):
    from notebench import Client

    server = start_server(tmp_path / "root", "--NotebenchApp.sse_retry_ms=200")
    try:
        jobs = ActiveJobs(client=Client(server.url, server.token))
        panels.append(jobs)
        wait_until(lambda: jobs.feed.status == "live", 30)
    finally:
        server.kill()
    wait_until(lambda: 'data-status="gone"' in jobs.indicator.widget.value, 30)
    assert "reload this page" in jobs.indicator.widget.value
