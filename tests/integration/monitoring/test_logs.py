"""``GET monitoring/logs``: the one log store's filters, and retention by age and count."""

from __future__ import annotations

import logging
import time

import pytest

from .conftest import INTERVAL


@pytest.fixture
def notebench_config():
    return {"log_keep_records": 60}


@pytest.fixture
def monitoring_config():
    return {"interval": INTERVAL, "log_max_age_days": 7}


async def add(services, *records):
    for level, source, message, job_id, ts in records:
        services.logs.append(level, source, message, job_id=job_id, ts=ts)
    await services.store.write(lambda conn: None)  # committed


async def logs(api, **params):
    response = await api("GET", "monitoring/logs", params={k: str(v) for k, v in params.items()})
    assert response.status == 200, response.body
    return response.body


async def test_log_filters(api, services):
    now = time.time()
    await add(services,
              (logging.INFO, "papermill", "cell 1 done", "j-aaaaaaaaaaaa", now - 30),
              (logging.WARNING, "jobs", "job j-aaaaaaaaaaaa slow", "j-aaaaaaaaaaaa", now - 20),
              (logging.ERROR, "notebench.monitoring", "Alert FIRING: disk", None, now - 10),
              (logging.DEBUG, "notebench.test", "noise", None, now - 5),
              (logging.INFO, "papermill", "other job", "j-bbbbbbbbbbbb", now - 1))
    errors = await logs(api, level="error")
    assert [r["message"] for r in errors["records"]] == ["Alert FIRING: disk"]
    assert {r["level"] for r in (await logs(api, level="warning"))["records"]} >= {
        "warning", "error"}
    by_source = await logs(api, source="notebench")  # a dotted prefix
    assert {r["source"] for r in by_source["records"]} <= {"notebench", "notebench.monitoring",
                                                           "notebench.test"}
    assert "Alert FIRING: disk" in [r["message"] for r in by_source["records"]]
    job = await logs(api, job="j-aaaaaaaaaaaa")
    assert [r["message"] for r in job["records"]] == ["cell 1 done",
                                                      "job j-aaaaaaaaaaaa slow"]
    recent = await logs(api, since=now - 15)
    assert "cell 1 done" not in [r["message"] for r in recent["records"]]
    found = await logs(api, q="firing")  # case-insensitive substring
    assert [r["message"] for r in found["records"]] == ["Alert FIRING: disk"]
    limited = await logs(api, limit=2)
    assert len(limited["records"]) == 2 and limited["next_after_id"] == limited["records"][-1]["id"]
    following = await logs(api, after_id=limited["next_after_id"], limit=1)
    assert following["records"][0]["id"] > limited["next_after_id"]
    tail = await logs(api, tail=1)
    assert [r["message"] for r in tail["records"]] == ["other job"]
    assert tail["query"]["tail"] == 1
    bad = await api("GET", "monitoring/logs", params={"level": "loud"})
    assert bad.status == 400


async def test_retention_by_age_and_count(api, services, monitoring):
    old = time.time() - 10 * 86400
    await add(services, *[(logging.INFO, "old", f"old {i}", None, old) for i in range(5)])
    await add(services, *[(logging.INFO, "new", f"new {i}", None, time.time())
                          for i in range(80)])
    removed = await monitoring.prune()
    assert removed["logs"] >= 5 + 20
    left = (await logs(api, limit=1000))["records"]
    assert not [r for r in left if r["source"] == "old"]  # older than log_max_age_days
    assert len(left) <= 60  # NotebenchApp.log_keep_records
    assert left[-1]["message"] == "new 79"  # the newest are kept
