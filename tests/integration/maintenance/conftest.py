"""Helpers of the maintenance tests: the ``notebench`` command as a user runs it, uploads,
and what a server serves of its jobs and assets, settled, for comparing two servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.server_process import ServerProcess
from tests.synchronous import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from tests.waiting import wait_until

FINAL = ("succeeded", "failed", "stopped", "cancelled")
#: fields of a job that a restore or a rebuild must give back as they were
JOB_FIELDS = ("id", "kind", "name", "state", "template", "notebook_path", "parameters",
              "resolved", "tags", "final_metrics", "latest_metrics", "job_dir")


def notebench(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m notebench ARGS`` in ``root`` (the workspace is ``root/notebench``), in an
    environment without the servers' variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTEBENCH_")}
    return subprocess.run([sys.executable, "-m", "notebench", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=root)


def upload(server: ServerProcess, category: str, name: str, body: bytes) -> dict[str, Any]:
    url = (f"{server.url}notebench/api/assets/upload/{category}?"
           + urllib.parse.urlencode({"name": name}))
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Authorization": f"token {server.token}", "Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def ended(server: ServerProcess, job_id: str, timeout: float = 180) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status, job = server.request("GET", f"lifecycle/jobs/{job_id}")
        assert status == 200, job
        return job if job["state"] in FINAL else None

    return wait_until(done, timeout=timeout)


def assets_of(server: ServerProcess) -> dict[tuple[str, str], dict[str, Any]]:
    """(category, rel_path) -> asset, every category listed (a listing reconciles the
    registry with the disk), once every file is hashed."""
    status, roots = server.request("GET", "assets/roots")
    assert status == 200, roots
    categories = [root["category"] for root in roots["roots"]]

    def listed() -> dict[tuple[str, str], dict[str, Any]] | None:
        found = {}
        for category in categories:
            status, page = server.request("GET", f"assets/list/{category}?limit=1000")
            assert status == 200 and page["next_cursor"] is None, page
            found.update({(category, a["rel_path"]): a for a in page["items"]})
        hashed = all(a["sha256"] or a["kind"] != "file" for a in found.values())
        return found if hashed else None

    return wait_until(listed, timeout=60, interval=0.5)


def jobs_of(server: ServerProcess) -> dict[str, dict[str, Any]]:
    status, page = server.request("GET", "lifecycle/jobs?limit=500")
    assert status == 200, page
    return {job["id"]: job for job in page["jobs"]}


def series_of(server: ServerProcess, job_id: str) -> list[tuple[str, int, Any]]:
    """A job's metric series: name, number of points and buckets."""
    status, metrics = server.request("GET", f"lifecycle/jobs/{job_id}/metrics")
    assert status == 200, metrics
    return [(s["name"], s["count"], s["buckets"]) for s in metrics["series"]]


def same_job(before: dict[str, Any], after: dict[str, Any]) -> None:
    """The fields that must come back, and the times to within a few seconds."""
    assert {k: after.get(k) for k in JOB_FIELDS} == {k: before.get(k) for k in JOB_FIELDS}
    assert after["created"] == before["created"]
    for key in ("started", "ended"):
        assert abs(after[key] - before[key]) < 10, (key, before[key], after[key])
