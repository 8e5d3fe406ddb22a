"""Metrics (stored, downsampled, exported) and logs (the one store, progress collapsed)."""

from __future__ import annotations

import csv
import io

import pytest

# writes the protocol's lines directly (non-finite values in their explicit encoding)
RAW_POINTS = """
import json, time
with open("events.jsonl", "a") as f:
    for step in range(500):
        value = (step % 7) * 1.5 + step * 0.01
        if step == 100:
            value = {"nonfinite": "nan"}
        if step == 250:
            value = {"nonfinite": "inf"}
        line = {"t": time.time(), "kind": "metrics", "step": step, "total_steps": 500,
                "metrics": {"loss": value, "lr": 0.1}}
        f.write(json.dumps(line) + "\\n")
"""

PROGRESS = r"""
import sys, time
print("first line")
for i in range(0, 101, 10):
    print(f"\r{i}%|" + "#" * (i // 10), end="", file=sys.stderr, flush=True)
    time.sleep(0.01)
print(file=sys.stderr)
print("second line")
print("ERROR-ish text in the middle")
print("last line")
"""


def value_of(step: int):
    if step == 100:
        return "nan"
    if step == 250:
        return "inf"
    return (step % 7) * 1.5 + step * 0.01


async def test_metrics_are_stored_downsampled_and_exported(jobs_api, write_notebook, api,
                                                           monkeypatch):
    from notebench.server.jobs import reading

    monkeypatch.setattr(reading, "CSV_PAGE", 300)  # the CSV below is sent in four parts
    path = write_notebook("points", [RAW_POINTS])
    job = await jobs_api.submit(path)
    done = await jobs_api.wait(job["id"])
    assert done["state"] == "succeeded"
    full = await jobs_api.metrics(job["id"], names="loss", max_points=10)
    assert full["names"] == ["loss", "lr"]
    [loss] = full["series"]
    assert loss["count"] == 500 and loss["downsampled"]
    buckets = loss["buckets"]
    assert 1 <= len(buckets) <= 10
    assert sum(b["count"] for b in buckets) == 500
    for bucket in buckets:
        steps = range(int(bucket["x"]), int(bucket["x_last"]) + 1)
        values = [value_of(s) for s in steps]
        finite = [v for v in values if not isinstance(v, str)]
        assert bucket["count"] == len(values)
        assert bucket["min"] == pytest.approx(min(finite))
        assert bucket["max"] == pytest.approx(max(finite))
        assert bucket["mean"] == pytest.approx(sum(finite) / len(finite))
        assert bucket["last"] == pytest.approx(values[-1])
        assert bucket["nonfinite"] == len(values) - len(finite)
    assert sum(b["nonfinite"] for b in buckets) == 2
    assert done["latest_metrics"]["loss"] == pytest.approx(value_of(499))
    raw = await jobs_api.metrics(job["id"], names="loss", max_points=10000)
    assert len(raw["series"][0]["buckets"]) == 500
    assert raw["series"][0]["buckets"][100]["last_nonfinite"] == "nan"
    by_time = await jobs_api.metrics(job["id"], names="lr", x="time", max_points=5)
    assert len(by_time["series"][0]["buckets"]) <= 5
    csv_response = await api("GET", f"lifecycle/jobs/{job['id']}/metrics",
                             params={"format": "csv"}, validate=False)  # not JSON
    assert csv_response.status == 200
    assert csv_response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_response.body.decode())))
    assert len(rows) == 1000  # one header, every point once, by name then index
    keys = [(r["name"], int(r["idx"])) for r in rows]
    assert keys == sorted(set(keys))
    loss_rows = [r for r in rows if r["name"] == "loss"]
    assert loss_rows[100]["value"] == "nan" and loss_rows[250]["value"] == "inf"
    assert float(loss_rows[7]["value"]) == pytest.approx(value_of(7))
    since = await jobs_api.metrics(job["id"], names="loss", since=float(rows[0]["t"]) - 1)
    assert since["series"][0]["count"] == 500
    later = await jobs_api.metrics(job["id"], names="loss", since=10**10)
    assert later["series"][0]["count"] == 0 and later["series"][0]["buckets"] == []
    bad = await api("GET", f"lifecycle/jobs/{job['id']}/metrics", params={"max_points": "0"})
    assert bad.status == 400


async def test_logs_collapse_progress_lines_and_filter(jobs_api, write_notebook):
    path = write_notebook("chatty", [PROGRESS])
    job = await jobs_api.submit(path)
    done = await jobs_api.wait(job["id"])
    assert done["state"] == "succeeded"
    records = await jobs_api.logs(job["id"], source="papermill")
    messages = [r["message"] for r in records]
    assert "100%|##########" in messages
    assert not any("50%" in m for m in messages), messages
    assert not any("\r" in m for m in messages)
    ours = [m for m in messages if m.endswith("line")]
    assert ours == ["first line", "second line", "last line"]
    assert any(m.startswith("Executing Cell") for m in messages)  # papermill's cell log
    lifecycle = await jobs_api.logs(job["id"], source="jobs")
    assert any("succeeded" in r["message"] for r in lifecycle)
    tail = await jobs_api.logs(job["id"], tail=2)
    everything = await jobs_api.logs(job["id"])
    assert [r["id"] for r in tail] == [r["id"] for r in everything[-2:]]
    found = await jobs_api.logs(job["id"], q="error-ISH")
    assert [r["message"] for r in found] == ["ERROR-ish text in the middle"]
    newer = await jobs_api.logs(job["id"], after_id=everything[-3]["id"])
    assert len(newer) == 2
    since = await jobs_api.logs(job["id"], since=everything[-1]["ts"])
    assert all(r["ts"] > everything[-1]["ts"] for r in since)


WIDE = """
import notebench
notebench.report(step=0, **{f"metric_{i:05d}": i + 0.5 for i in range(width)})
notebench.report(step=1, loss=0.5)
"""


async def test_a_record_longer_than_one_read_of_the_tailer_is_stored(jobs_api,
                                                                      write_notebook):
    # one line of events.jsonl of about 300 KB: longer than what the tailer reads at once
    path = write_notebook("wide", [WIDE], "width: int = 12000")
    job = await jobs_api.submit(path)
    done = await jobs_api.wait(job["id"], timeout=120)
    assert done["state"] == "succeeded", done
    metrics = await jobs_api.metrics(job["id"], names="loss,metric_00000,metric_11999")
    assert {s["name"]: s["count"] for s in metrics["series"]} == {
        "loss": 1, "metric_00000": 1, "metric_11999": 1}
    assert done["latest_metrics"]["metric_11999"] == 11999.5
    assert len(metrics["names"]) == 12001
