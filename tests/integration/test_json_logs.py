"""``c.NotebenchApp.json_logs``: the server process's stderr as JSON lines, the token never
in them; off, the server's usual text lines."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from notebench.jobprotocol import TERMINAL
from tests.integration.widgets.tiny import job_state, serving, submit
from tests.server_process import ServerProcess
from tests.synchronous import jp_asyncio_loop, jp_server_cleanup  # noqa: F401
from tests.waiting import wait_until

KEYS = {"time", "level", "logger", "message"}
#: what the server writes before notebench is linked: the extensions imported or linked first
BEFORE_LINK = re.compile(r"^\[I [-\d :.]+ ServerApp\] (Extension package \S+ took [\d.]+s to "
                         r"import|\S+ \| extension was successfully linked\.)$")
TEXT_LINE = re.compile(r"^\[[DIWEC] [-\d :.]+ \S+\] ")
#: the formatter on the server's own handler from the first line on (docs/monitoring.md)
FROM_THE_FIRST_LINE = ('c.ServerApp.logging_config = {"formatters": {"console": {"class": '
                       '"notebench.server.logs.jsonlines.JsonLineFormatter"}}}\n')


def output(server: ServerProcess) -> list[str]:
    """The server's non-empty output lines (stderr; stdout shares the file and is empty)."""
    return [line for line in server.log_path.read_text(errors="replace").splitlines()
            if line.strip()]


def entries(lines: list[str]) -> list[dict[str, Any]]:
    """Every line as a JSON object with the keys and an ISO 8601 UTC time."""
    found = []
    for line in lines:
        entry = json.loads(line)
        assert set(entry) >= KEYS, line
        assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0), line
        assert all(isinstance(entry[key], str) for key in KEYS), line
        found.append(entry)
    return found


def logged(server: ServerProcess, text: str) -> bool:
    return any(text in line for line in output(server))


def test_json_lines_from_notebench_s_link_on(tmp_path: Path):
    with serving(tmp_path / "root", "--NotebenchApp.json_logs=True") as server:
        assert server.request("GET", "no/such/route")[0] == 404
        status, _ = server.request("POST", "_test/log",
                                   {"message": f"the token is {server.token}"})
        assert status == 200
        job = submit(server, steps=2, delay=0.0)
        wait_until(lambda: job_state(server, job["id"]) in TERMINAL, 120)
        wait_until(lambda: logged(server, "no/such/route"), 20)
    lines = output(server)
    first = next(i for i, line in enumerate(lines) if line.startswith("{"))
    assert all(BEFORE_LINK.match(line) for line in lines[:first]), lines[:first]
    found = entries(lines[first:])
    assert found[0]["message"] == "notebench.server | extension was successfully linked."
    assert server.token not in "\n".join(lines)
    by_message = {entry["message"]: entry for entry in found}
    assert by_message["the token is [secret] 0"]["logger"] == "notebench.test"
    started = [e for e in found if e["message"].startswith("notebench started")]
    assert started and started[0]["logger"] == "notebench" and started[0]["level"] == "info"
    not_found = [e for e in found if "404 GET /notebench/api/no/such/route" in e["message"]]
    assert not_found and not_found[0]["level"] == "warning"
    assert any(e["message"].startswith("Shutting down") for e in found)  # to the end


def test_every_line_with_the_formatter_on_the_server_s_handler(tmp_path: Path):
    config = tmp_path / "json_logs_config.py"
    config.write_text(FROM_THE_FIRST_LINE + "c.NotebenchApp.json_logs = True\n")
    with serving(tmp_path / "root", f"--config={config}") as server:
        assert server.request("GET", "no/such/route")[0] == 404
        wait_until(lambda: logged(server, "no/such/route"), 20)
    found = entries(output(server))
    assert any(e["message"].startswith("Extension package") for e in found)


def test_text_lines_without_the_option(tmp_path: Path):
    with serving(tmp_path / "root") as server:
        assert server.request("GET", "no/such/route")[0] == 404
        wait_until(lambda: logged(server, "no/such/route"), 20)
    lines = output(server)
    assert not any(line.startswith("{") for line in lines)
    assert any(TEXT_LINE.match(line) and "404 GET /notebench/api/no/such/route" in line
               for line in lines)
