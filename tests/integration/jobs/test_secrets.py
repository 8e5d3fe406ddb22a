"""The server's credentials stay out of jobs: not in their environment, not in anything
they write or the server serves of them (output, logs, artifacts, the job directory)."""

from __future__ import annotations

import json
import os
import secrets
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_auth import raw_fetch

from .conftest import wait_for

#: the hub's API token of this server's environment (set before the server starts)
HUB_TOKEN = "hub-" + secrets.token_hex(16)

DUMP_ENV = [
    "import json, os, subprocess\n"
    "print('ENVIRON', json.dumps(dict(os.environ)))\n"
    "print('SECRET_VARS', sorted(k for k in os.environ\n"
    "      if k in ('NOTEBENCH_SERVER_TOKEN', 'JUPYTERHUB_API_TOKEN', 'JUPYTER_TOKEN')))",
    "print(subprocess.run(['env'], capture_output=True, text=True).stdout)",
    "!env",
    "from notebench.client import Client, ServerNotFound\n"
    "try:\n"
    "    Client()\n"
    "    print('CLIENT found a token')\n"
    "except ServerNotFound as exc:\n"
    "    print('CLIENT refused:', exc)",
]

PRINT_HUB_TOKEN = [
    "from pathlib import Path\n"
    "import time\n"
    "value = Path(source).read_text()\n"
    "print('hub=' + value, flush=True)",
    "deadline = time.monotonic() + 60\n"
    "while not Path(release).exists() and time.monotonic() < deadline:\n"
    "    time.sleep(0.05)",
    "raise RuntimeError('bad ' + value)",
]


@pytest.fixture
def jp_environ(jp_environ: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The server runs where a hub gave it an API token."""
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", HUB_TOKEN)
    return jp_environ


async def everything_served(api: Any, jp_http_port: int, jp_base_url: str,
                            jp_auth_header: dict[str, str], job_id: str) -> dict[str, bytes]:
    """What the API serves of a job: output, its logs, the monitoring logs, each artifact."""
    served: dict[str, bytes] = {}
    output = await api("GET", f"lifecycle/jobs/{job_id}/output")
    served["output"] = json.dumps(output.body).encode()
    logs = await api("GET", f"lifecycle/jobs/{job_id}/logs", params={"limit": "10000"})
    served["job logs"] = json.dumps(logs.body).encode()
    monitoring = await api("GET", "monitoring/logs", params={"job": job_id, "limit": "10000"})
    served["monitoring logs"] = json.dumps(monitoring.body).encode()
    served["job"] = json.dumps((await api("GET", f"lifecycle/jobs/{job_id}")).body).encode()
    listing = await api("GET", f"lifecycle/artifacts/{job_id}")
    base = f"{jp_base_url}notebench/api/lifecycle/artifacts/{job_id}/"
    for item in listing.body["files"]:
        path = urllib.parse.quote(item["path"])
        response = await raw_fetch(jp_http_port, base + path, "GET", jp_auth_header)
        assert response.code == 200, item
        served[f"artifact {item['path']}"] = response.body
    return served


def job_files(job_dir: Path) -> dict[str, bytes]:
    """Every file in the job directory, hidden ones included."""
    return {str(p.relative_to(job_dir)): p.read_bytes()
            for p in job_dir.rglob("*") if p.is_file()}


async def test_job_environment_and_outputs_hold_no_server_token(
        jobs_api, write_notebook, api, services, jp_serverapp, jp_http_port, jp_base_url,
        jp_auth_header):
    token = jp_serverapp.identity_provider.token
    assert token and os.environ["JUPYTERHUB_API_TOKEN"] == HUB_TOKEN
    path = write_notebook("dump-env", DUMP_ENV)
    job = await jobs_api.submit(path)
    done = await jobs_api.wait(job["id"])
    assert done["state"] == "succeeded", done

    served = await everything_served(api, jp_http_port, jp_base_url, jp_auth_header, job["id"])
    output = served["output"].decode()
    assert "NOTEBENCH_SERVER_URL" in output and "NOTEBENCH_JOB_DIR" in output  # env printed
    assert "SECRET_VARS []" in output
    assert "CLIENT refused:" in output and "token=" in output
    assert "artifact papermill.log" in served and "artifact output.ipynb" in served
    job_dir = services.workspace.path / done["job_dir"]
    on_disk = job_files(job_dir)
    assert "output.ipynb" in on_disk and "papermill.log" in on_disk
    for secret in (token, HUB_TOKEN):
        for where, data in {**served, **on_disk}.items():
            assert secret.encode() not in data, where


async def test_a_job_printing_the_hub_token_has_it_scrubbed(
        jobs_api, write_notebook, api, services, jp_root_dir, jp_http_port, jp_base_url,
        jp_auth_header):
    source = jp_root_dir / "found-elsewhere.txt"  # a job may find a secret anywhere
    source.write_text(HUB_TOKEN)
    release = jp_root_dir / "release"
    path = write_notebook("print-hub", PRINT_HUB_TOKEN, "source = ''\nrelease = ''")
    job = await jobs_api.submit(path, parameters={"source": str(source),
                                                  "release": str(release)})
    job_id = job["id"]

    async def printed() -> bool:
        return any("hub=" in r["message"] for r in await jobs_api.logs(job_id))

    await wait_for(printed)
    running = await jobs_api.get(job_id)
    assert running["state"] == "running"
    job_dir = services.workspace.path / running["job_dir"]
    # the running job's own log holds it; what is served of it does not
    assert HUB_TOKEN.encode() in (job_dir / "papermill.log").read_bytes()
    live = await everything_served(api, jp_http_port, jp_base_url, jp_auth_header, job_id)
    assert b"hub=[secret]" in live["artifact papermill.log"]
    assert any(b"hub=[secret]" in data for data in live.values() if data is not
               live["artifact papermill.log"])
    for where, data in live.items():
        assert HUB_TOKEN.encode() not in data, where

    release.touch()
    done = await jobs_api.wait(job_id)
    assert done["state"] == "failed"
    assert "[secret]" in done["reason"] and HUB_TOKEN not in done["reason"]
    assert done["error"]["evalue"] == "bad [secret]"
    served = await everything_served(api, jp_http_port, jp_base_url, jp_auth_header, job_id)
    assert b"hub=[secret]" in served["artifact papermill.log"]
    on_disk = job_files(job_dir)
    assert ".scrubbed" not in {Path(p).parts[0] for p in on_disk}  # served copies dropped
    for where, data in {**served, **on_disk}.items():
        assert HUB_TOKEN.encode() not in data, where
