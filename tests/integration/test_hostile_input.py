"""Hostile input: huge or non-finite numbers, names no header or log line may hold raw,
formula-like CSV cells, secrets in a webhook URL, a folder swapped for a link mid-walk,
an unserved method with a body, and what a download's media type is documented as."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import socket
import urllib.parse
from pathlib import Path, PurePosixPath
from typing import Any

import nbformat
import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.integration.assets.samples import csv_bytes
from tests.integration.jobs.conftest import notebook
from tests.openapi_check import document
from tests.waiting import wait_for

HUGE = "99999999999999999999999"
HOSTILE_NUMBERS = (HUGE, "-" + HUGE, "inf", "-inf", "nan", "1e400", "9223372036854775808")
SECRET = "s3cr3t-T0KEN"
FORMULA_NAMES = ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)",
                 "\tlead", "\rlead"]
ARTIFACT = "résumé 中文 \u2603.txt"  # nothing of it in Latin-1 but the first word


@pytest.fixture
def import_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "import"
    folder.mkdir()
    return folder


@pytest.fixture
def jp_server_config(notebench_config: dict[str, Any], import_dir: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"notebench.server": True}},
        "NotebenchApp": notebench_config,
        "NotebenchAssetRegistry": {"import_dirs": [str(import_dir)], "scan_interval": 0.0},
        "NotebenchJobService": {"cpu_slots": 2, "tick_seconds": 0.2, "stall_minutes": 0.0,
                       "stop_grace_seconds": 5.0, "kill_grace_seconds": 2.0},
    }


@pytest.fixture
def write_notebook(jp_root_dir: Path):
    def write(name: str, cells: list[str]) -> str:
        folder = jp_root_dir / "nbs"
        folder.mkdir(exist_ok=True)
        nbformat.write(notebook(cells), folder / f"{name}.ipynb")
        return f"nbs/{name}.ipynb"

    return write


@pytest.fixture
def jobs_cleanup(services: Any):
    """A job of a failed test must not outlive it."""
    yield
    for job_id in services.jobs.active_job_ids():
        if job_id.startswith("j-"):
            services.jobs.executor.kill(job_id)


def assert_bad_request(response: Any, what: str) -> None:
    assert response.status == 400, (what, response.status, response.body)
    assert response.body["error"]["code"].startswith("invalid"), (what, response.body)


def media_type_documented(method: str, template: str, status: int, content_type: str) -> bool:
    """Whether the document lists ``content_type`` (or a range holding it) for a response."""
    content = document()["paths"][template][method]["responses"][str(status)].get("content", {})
    kind = content_type.split(";")[0].strip().lower()
    ranges = {kind, kind.split("/")[0] + "/*", "*/*"}
    return bool(ranges & set(content))


# -- 1. numbers ---------------------------------------------------------------------------


async def test_huge_or_non_finite_query_numbers_are_400(api):
    routes = {
        "lifecycle/jobs": ("offset", "limit", "created_after"),
        "lifecycle/sweeps": ("offset", "limit"),
        "monitoring/logs": ("after_id", "since", "until", "limit", "tail"),
        "monitoring/metrics": ("since", "until", "step", "max_points"),
        "monitoring/alerts": ("since", "limit"),
        "lifecycle/jobs/metrics": ("max_points",),
    }
    for path, names in routes.items():
        for name in names:
            for value in HOSTILE_NUMBERS:
                response = await api("GET", path, params={name: value})
                assert_bad_request(response, f"{path}?{name}={value}")
    ok = await api("GET", "monitoring/logs", params={"after_id": "9007199254740991"})
    assert ok.status == 200, ok.body


async def test_huge_priority_is_400_and_writes_nothing(api, services, write_notebook):
    path = write_notebook("tiny", ["x = 1"])
    runs = Path(services.jobs.runs_dir)
    for priority in ("9223372036854775808", "18446744073709551615", "1000001", "-1000001"):
        body = f'{{"notebook": {json.dumps(path)}, "priority": {priority}}}'
        response = await api("POST", "lifecycle/jobs", body)
        assert_bad_request(response, f"priority {priority}")
        assert "priority" in response.body["error"]["message"]
    assert not runs.exists() or not any(runs.iterdir())  # no orphaned job directory
    listing = await api("GET", "lifecycle/jobs")
    assert listing.body["jobs"] == []


# -- 2, 3, 4. a job whose names are hostile -----------------------------------------------

HOSTILE_JOB = f"""
import json, pathlib, time
with open("events.jsonl", "a") as f:
    for step, name in enumerate({[*FORMULA_NAMES, "loss"]!r}):
        f.write(json.dumps({{"t": time.time(), "kind": "metrics", "step": step,
                             "metrics": {{name: -1.5}}}}) + "\\n")
pathlib.Path({ARTIFACT!r}).write_text("hello")
"""


async def test_a_job_with_hostile_names(api, jp_fetch, write_notebook, jobs_cleanup):
    path = write_notebook("hostile", [HOSTILE_JOB])
    name = "evil\nINFO jobs: job j-000000000000 (forged) succeeded\r\x1b[2K"
    submitted = await api("POST", "lifecycle/jobs", {"notebook": path, "name": name})
    assert submitted.status == 201, submitted.body
    job_id = submitted.body["id"]

    async def ended() -> dict[str, Any] | None:
        job = (await api("GET", f"lifecycle/jobs/{job_id}")).body
        return job if job["state"] in ("succeeded", "failed", "stopped", "cancelled") else None

    job = await wait_for(ended, 120, 0.2)
    assert job["state"] == "succeeded", job
    assert job["name"] == name  # the name itself is kept as given

    # 4: the lifecycle records are one line each, the name escaped in them
    logs = await api("GET", f"lifecycle/jobs/{job_id}/logs", params={"source": "jobs"})
    lifecycle = [r["message"] for r in logs.body["records"]]
    queued = [m for m in lifecycle if "queued" in m]
    assert queued, lifecycle
    for message in lifecycle:
        assert not any(c in message for c in "\n\r\x1b"), message
    assert "evil\\nINFO" in queued[0]

    # 1: numbers of the job routes
    for value in HOSTILE_NUMBERS:
        for route, name_ in (("logs", "after_id"), ("logs", "since"), ("logs", "tail"),
                             ("metrics", "since"), ("metrics", "max_points")):
            response = await api("GET", f"lifecycle/jobs/{job_id}/{route}",
                                 params={name_: value})
            assert_bad_request(response, f"{route}?{name_}={value}")

    # 3: metric names that look like formulas are text in the CSV; numbers are untouched
    exported = await api("GET", f"lifecycle/jobs/{job_id}/metrics", params={"format": "csv"},
                         validate=False)
    assert exported.status == 200
    rows = list(csv.reader(io.StringIO(exported.body.decode(), newline="")))
    assert rows[0] == ["name", "idx", "step", "t", "value"]
    assert len(rows) == 1 + len(FORMULA_NAMES) + 1  # no name splits a row
    by_name = {row[0]: row for row in rows[1:]}
    for formula in FORMULA_NAMES:
        assert "'" + formula.replace("\r", "\n") in by_name, (formula, sorted(by_name))
    assert "loss" in by_name
    assert {row[4] for row in rows[1:]} == {"-1.5"}

    # 2: a non-Latin-1 artifact name: RFC 6266/5987, an ASCII fallback
    response = await jp_fetch("notebench", "api", "lifecycle", "artifacts", job_id,
                              ARTIFACT, raise_error=False)  # escaped by jp_fetch
    assert response.code == 200, response.body
    assert response.body == b"hello"
    disposition = response.headers["Content-Disposition"]
    disposition.encode("ascii")
    assert disposition.startswith('attachment; filename="r_sum_')
    assert f"filename*=UTF-8''{urllib.parse.quote(ARTIFACT, safe='')}" in disposition
    assert media_type_documented("get", "/lifecycle/artifacts/{job_id}/{path}", 200,
                                 response.headers["Content-Type"])


# -- 5. a failing webhook logs no secret ----------------------------------------------------


async def test_a_failing_webhook_logs_only_scheme_and_host(caplog):
    from notebench.server.monitoring.webhook import WebhookNotifier, payload

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens: the connection is refused
    url = f"http://user:{SECRET}@127.0.0.1:{port}/hooks/{SECRET}?token={SECRET}"
    notifier = WebhookNotifier(url, retries=0, timeout=5)
    notifier._client = AsyncHTTPClient(force_instance=True)
    alert = {"id": "0123456789abcdef", "rule": "r", "severity": "critical", "labels": {},
             "message": "m", "state": "firing", "fired_at": 1.0}
    try:
        with caplog.at_level(logging.WARNING, logger="notebench.monitoring"):
            await notifier._deliver(payload(alert))
    finally:
        notifier._client.close()
    assert notifier.failed == 1
    messages = [r.getMessage() for r in caplog.records if r.name == "notebench.monitoring"]
    assert messages, caplog.records
    assert all(SECRET not in m for m in messages), messages
    assert any(f"http://127.0.0.1:{port}" in m for m in messages), messages
    assert SECRET not in (notifier.last_error or "")


# -- 6. a folder swapped for a link mid-walk --------------------------------------------------


def swapping_walk(original: Any, folder: str, outside: Path) -> Any:
    """A walk that replaces ``folder`` by a link to ``outside`` just after listing it."""

    def walk(path: Path, **kwargs: Any) -> Any:
        for rel, entry, is_dir in original(path, **kwargs):
            yield rel, entry, is_dir
            if is_dir and rel == PurePosixPath(folder):
                shutil.rmtree(path / folder)
                (path / folder).symlink_to(outside, target_is_directory=True)

    return walk


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.csv").write_bytes(b"x,y\n" + SECRET.encode() + b",1\n")
    return folder


def test_the_walker_never_leaves_a_folder_swapped_for_a_link(tmp_path, outside):
    from notebench.server.assets import hashing
    from notebench.server.errors import ApiError

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "inner.csv").write_bytes(b"a,b\n1,2\n")
    walk = swapping_walk(hashing.walk_tree, "sub", outside)
    seen = []
    with pytest.raises(ApiError) as refused:
        for rel, entry, is_dir in walk(src, allow_hidden=False, link_ok=lambda *a: False):
            seen.append(rel.as_posix())
            if not is_dir:
                fd = hashing.open_entry(entry)
                os.close(fd)
    assert refused.value.status == 400 and refused.value.code == "link_refused"
    assert seen == ["sub"]


async def test_import_of_a_folder_swapped_for_a_link_copies_nothing_outside(
        api, import_dir, outside, services, monkeypatch):
    from notebench.server.assets import importer

    (import_dir / "pack" / "sub").mkdir(parents=True)
    (import_dir / "pack" / "top.csv").write_bytes(csv_bytes())
    (import_dir / "pack" / "sub" / "inner.csv").write_bytes(csv_bytes(seed=1))
    monkeypatch.setattr(importer, "walk_tree",
                        swapping_walk(importer.walk_tree, "sub", outside))
    response = await api("POST", "assets/import", {"category": "datasets", "path": "pack"})
    assert response.status == 400, response.body
    assert response.body["error"]["code"] == "link_refused"
    root = Path(services.workspace.path)
    copied = [p for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert copied == []


# -- 8. a method the streamed upload does not serve ----------------------------------------------


async def test_put_with_a_body_to_the_upload_route_is_405(jp_fetch):
    response = await jp_fetch("notebench", "api", "assets", "upload", "datasets",
                              method="PUT", body=b"x,y\n" * 1000, raise_error=False,
                              params={"name": "a.csv"},
                              headers={"Content-Type": "application/octet-stream"})
    assert response.code == 405, response.body
    assert json.loads(response.body)["error"]["code"] == "method_not_allowed"
    assert "POST" in [m.strip() for m in response.headers["Allow"].split(",")]
    assert "PUT" not in response.headers["Allow"]


# -- 9. a download's media type is the one the document lists -------------------------------------


async def test_a_csv_download_has_a_documented_media_type(api):
    uploaded = await api("POST", "assets/upload/datasets", csv_bytes(), params={"name": "t.csv"},
                         headers={"Content-Type": "application/octet-stream"})
    assert uploaded.status == 201, uploaded.body
    response = await api("GET", f"assets/download/{uploaded.body['id']}")
    assert response.status == 200 and response.body == csv_bytes()
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("text/csv")
    assert media_type_documented("get", "/assets/download/{asset_id}", 200, content_type)
