"""``notebench jobs ...`` run as a command against a real server in its own process.

Each subcommand's ``--json`` output is checked against the API's own answer, its table
for its columns, and its exit status; errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from notebench.cli_jobs import JOB_COLUMNS, parse_param
from tests.integration.widgets.tiny import (
    job_state,
    serving,
    submit,
    write_notebook,
)
from tests.server_process import ServerProcess, free_port
from tests.synchronous import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from tests.waiting import wait_until

LONG = {"steps": 1000, "delay": 0.1}  # a job that runs until it is stopped




@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("cli") / "root"
    with serving(root) as proc:
        write_notebook(root / "nbs" / "fail.ipynb", ["raise ValueError('boom in cell')"])
        write_notebook(root / "nbs" / "label.ipynb", ["print('label is', repr(label))"],
                       parameters="label: str = 'a'\nlr: float = 0.1")
        yield proc


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTEBENCH_")}
    return {**env, **extra}


def cli(server: ServerProcess | None, *args: str, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m notebench jobs ARGS`` (``--url``/``--token`` of ``server`` when given)."""
    command = [sys.executable, "-m", "notebench", "jobs", *args]
    if server is not None:
        command += ["--url", server.url, "--token", server.token]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else clean_env(),
                          cwd=server.root_dir if server is not None else None)


def api(server: ServerProcess, path: str) -> Any:
    status, body = server.request("GET", path)
    assert status == 200, body
    return body


def ended(server: ServerProcess, job_id: str) -> dict[str, Any]:
    """The job once it has ended (the API's record)."""
    return wait_until(lambda: (job := api(server, f"lifecycle/jobs/{job_id}"))["state"] in (
        "succeeded", "failed", "stopped", "cancelled") and job, timeout=120)


def one_line_error(result: subprocess.CompletedProcess[str], status: int) -> str:
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("notebench"), result.stderr
    return lines[0]


def table(text: str) -> list[list[str]]:
    """A text table's rows, cells split where two spaces or more part them."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------------ ls


def test_ls_lists_jobs_as_the_api_does(server: ServerProcess) -> None:
    first = submit(server, steps=2, delay=0.0)
    ids = []
    for lr in (0.1, 0.2):
        status, job = server.request("POST", "lifecycle/jobs", {
            "notebook": "nbs/tiny.ipynb", "parameters": {"steps": 2, "delay": 0.0, "lr": lr},
            "tags": ["ls-test"]})
        assert status == 201, job
        ids.append(job["id"])
    for job_id in [first["id"], *ids]:
        ended(server, job_id)

    listed = cli(server, "ls", "--tag", "ls-test", "--json")
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    expected = api(server, "lifecycle/jobs?tag=ls-test")["jobs"]
    assert [r["id"] for r in records] == [j["id"] for j in expected] == ids[::-1]
    for mine, theirs in zip(records, expected, strict=True):
        for key in ("name", "state", "parameters", "tags", "created", "ended", "headline"):
            assert mine[key] == theirs[key], key

    limited = json.loads(cli(server, "ls", "--tag", "ls-test", "--limit", "1", "--json").stdout)
    assert [r["id"] for r in limited] == [ids[1]]
    succeeded = json.loads(cli(server, "ls", "--state", "queued,succeeded", "--limit", "500",
                               "--json").stdout)
    assert {first["id"], *ids} <= {r["id"] for r in succeeded}
    assert {r["state"] for r in succeeded} <= {"queued", "succeeded"}
    none = json.loads(cli(server, "ls", "--tag", "ls-test", "--state", "failed",
                          "--json").stdout)
    assert none == []

    human = cli(server, "ls", "--tag", "ls-test")
    assert human.returncode == 0, human.stderr
    rows = table(human.stdout)
    assert rows[0] == list(JOB_COLUMNS)
    assert [row[0] for row in rows[1:]] == ids[::-1]
    by_column = [dict(zip(JOB_COLUMNS, row, strict=True)) for row in rows[1:]]
    assert all(row["STATE"] == "succeeded" and row["PROGRESS"] == "100%" for row in by_column)
    loss = expected[0]["headline"]["loss"]["value"]
    assert by_column[0]["LOSS"] == f"{loss:.4g}"

    bad_state = cli(server, "ls", "--state", "bogus")
    assert "bogus" in one_line_error(bad_state, 1)


# -------------------------------------------------------------------------- submit


def test_param_values_are_json_where_they_parse() -> None:
    assert parse_param("lr=1e-3") == ("lr", 0.001)
    assert parse_param("layers=[64, 32]") == ("layers", [64, 32])
    assert parse_param("amp=true") == ("amp", True)
    assert parse_param('label="12"') == ("label", "12")
    assert parse_param("device=cuda:0") == ("device", "cuda:0")
    assert parse_param("expr=a=b") == ("expr", "a=b")
    assert parse_param("empty=") == ("empty", "")
    for bad in ("lr", "=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_param(bad)


def test_submit_reads_parameters_as_json_else_as_text(server: ServerProcess) -> None:
    result = cli(server, "submit", "nbs/label.ipynb", "-p", "label=hello", "-p", "lr=1e-3",
                 "--name", "cli-submitted", "--tag", "cli", "--tag", "submit", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    job = api(server, f"lifecycle/jobs/{record['id']}")
    assert record["parameters"] == job["parameters"] == {"label": "hello", "lr": 0.001}
    assert job["name"] == "cli-submitted" and job["tags"] == ["cli", "submit"]

    quoted = cli(server, "submit", "nbs/label.ipynb", "-p", 'label="12"', "-p", "lr=2")
    assert quoted.returncode == 0, quoted.stderr
    job_id = quoted.stdout.strip()  # the id alone on stdout, for $(...)
    assert job_id in quoted.stderr
    assert api(server, f"lifecycle/jobs/{job_id}")["parameters"] == {"label": "12", "lr": 2}
    assert ended(server, job_id)["state"] == "succeeded"
    output = api(server, f"lifecycle/jobs/{job_id}/logs")["records"]
    assert any(r["message"] == "label is '12'" for r in output)

    wrong_type = cli(server, "submit", "nbs/label.ipynb", "-p", "lr=fast")
    assert "lr" in one_line_error(wrong_type, 1)
    missing = cli(server, "submit", "nbs/none.ipynb")
    assert "nbs/none.ipynb" in one_line_error(missing, 1)
    no_value = cli(server, "submit", "nbs/label.ipynb", "-p", "label")
    assert no_value.returncode == 2 and "name=value" in no_value.stderr


# ---------------------------------------------------------------------------- logs


def test_logs_follow_until_the_job_ends(server: ServerProcess) -> None:
    job = submit(server, steps=5, delay=0.2)
    followed = cli(server, "logs", "-f", job["id"])
    assert followed.returncode == 0, followed.stderr
    # the command returned on its own: the job had ended, its last output printed
    assert api(server, f"lifecycle/jobs/{job['id']}")["state"] == "succeeded"
    lines = followed.stdout.splitlines()
    assert "trained 5 steps" in lines
    assert lines[-1] == f"[jobs] job {job['id']} succeeded"

    records = api(server, f"lifecycle/jobs/{job['id']}/logs")["records"]
    as_json = cli(server, "logs", "--json", job["id"])
    assert as_json.returncode == 0, as_json.stderr
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == records
    tail = cli(server, "logs", "--tail", "2", "--json", job["id"])
    assert [json.loads(line) for line in tail.stdout.splitlines()] == records[-2:]
    stamped = cli(server, "logs", "--tail", "1", "-t", job["id"]).stdout
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[jobs\] job .* succeeded\n", stamped)


# ---------------------------------------------------------------------------- wait


def test_wait_exits_zero_only_when_the_job_succeeded(server: ServerProcess) -> None:
    good = submit(server, steps=3, delay=0.05)
    status, bad = server.request("POST", "lifecycle/jobs", {"notebook": "nbs/fail.ipynb"})
    assert status == 201, bad

    waited = cli(server, "wait", good["id"], "--json")
    assert waited.returncode == 0, waited.stderr
    record = json.loads(waited.stdout)
    job = api(server, f"lifecycle/jobs/{good['id']}")
    assert record["state"] == job["state"] == "succeeded"
    assert record["final_metrics"] == job["final_metrics"]

    failed = cli(server, "wait", bad["id"])
    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    assert failed.stdout.startswith(f"{bad['id']} (fail) failed after ")
    assert "ValueError: boom in cell" in failed.stdout
    assert api(server, f"lifecycle/jobs/{bad['id']}")["state"] == "failed"


def test_wait_timeout_then_stop(server: ServerProcess) -> None:
    job = submit(server, **LONG)
    wait_until(lambda: job_state(server, job["id"]) == "running")
    timed_out = cli(server, "wait", job["id"], "--timeout", "0.5")
    assert "still running" in one_line_error(timed_out, 124)

    stopped = cli(server, "stop", job["id"], "--wait", "--json")
    assert stopped.returncode == 0, stopped.stderr
    record = json.loads(stopped.stdout)
    assert record["state"] == api(server, f"lifecycle/jobs/{job['id']}")["state"] == "stopped"
    assert record["stop_requested"]

    again = cli(server, "stop", job["id"])
    assert "stopped" in one_line_error(again, 1)


def test_stop_without_waiting_answers_stopping(server: ServerProcess) -> None:
    job = submit(server, **LONG)
    wait_until(lambda: job_state(server, job["id"]) == "running")
    stopped = cli(server, "stop", job["id"])
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith(f"{job['id']} (tiny) stop")  # stopping, or stopped
    assert ended(server, job["id"])["state"] == "stopped"


# ------------------------------------------------------------------------- compare


def test_compare_matches_the_compare_route(server: ServerProcess) -> None:
    a = submit(server, steps=3, delay=0.0, lr=0.5)
    b = submit(server, steps=3, delay=0.0, lr=0.25)
    for job in (a, b):
        assert ended(server, job["id"])["state"] == "succeeded"

    result = cli(server, "compare", a["id"], b["id"], "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    expected = api(server, f"lifecycle/jobs/compare?ids={a['id']},{b['id']}")
    assert payload["differing"] == expected["differing"] == ["lr"]
    assert [row["id"] for row in payload["jobs"]] == [a["id"], b["id"]]
    for row, job in zip(payload["jobs"], expected["jobs"], strict=True):
        assert row["state"] == job["state"] and row["duration"] == job["duration"]
        for param in expected["parameters"]:
            assert row[f"params.{param['name']}"] == param["resolved"][job["id"]]
        for name in expected["metrics"]:
            assert row[f"metrics.{name}.final"] == job["metrics"][name]["final"]
            assert row[f"metrics.{name}.best"] == job["metrics"][name]["best"]

    # accuracy rises: the best one is its largest unless a mode says otherwise
    flipped = json.loads(cli(server, "compare", a["id"], "--mode", "accuracy:min",
                             "--json").stdout)
    by_mode = api(server, f"lifecycle/jobs/compare?ids={a['id']}&modes=accuracy:min")
    assert flipped["jobs"][0]["metrics.accuracy.best"] == \
        by_mode["jobs"][0]["metrics"]["accuracy"]["best"] == 0.0

    human = cli(server, "compare", a["id"], b["id"])
    assert human.returncode == 0, human.stderr
    rows = table(human.stdout)
    assert rows[0] == [a["id"], b["id"]]
    labels = {row[0]: row[1:] for row in rows[1:]}
    assert labels["params.lr *"] == ["0.5", "0.25"]
    assert labels["params.steps"] == ["3", "3"]
    assert labels["state"] == ["succeeded", "succeeded"]
    assert {"metrics.loss.final", "metrics.loss.best", "metrics.accuracy.best"} <= set(labels)


# ---------------------------------------------------------------- server and errors


def test_the_server_from_the_environment_variables(server: ServerProcess) -> None:
    env = clean_env(NOTEBENCH_SERVER_URL=server.url, NOTEBENCH_SERVER_TOKEN=server.token)
    listed = cli(None, "ls", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [
        j["id"] for j in api(server, "lifecycle/jobs?limit=20")["jobs"]]


def test_a_missing_server_or_job_is_one_line_and_a_status(server: ServerProcess,
                                                          tmp_path: Path) -> None:
    nowhere = cli(None, "ls", "--url", f"http://127.0.0.1:{free_port()}/")
    assert "cannot reach" in one_line_error(nowhere, 2)
    # no --url, no variables, no Jupyter server among this process's ancestors
    undiscovered = cli(None, "ls", env=clean_env(JUPYTER_RUNTIME_DIR=str(tmp_path)))
    assert "no notebench server found" in one_line_error(undiscovered, 2)
    refused = cli(None, "ls", "--url", server.url, "--token", "not-the-token")
    assert "--token" in one_line_error(refused, 2)

    for command in ("logs", "wait", "stop"):
        missing = cli(server, command, "j-000000000000")
        assert "no job j-000000000000" in one_line_error(missing, 1), command
    missing = cli(server, "compare", "j-000000000000")
    assert "j-000000000000" in one_line_error(missing, 1)
    not_an_id = cli(server, "wait", "nope")
    assert not_an_id.returncode == 2 and "not a job id" in not_an_id.stderr
    assert "Traceback" not in not_an_id.stderr
