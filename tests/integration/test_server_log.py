"""notebench's log records in the Jupyter server's own log output, at the server's level."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import time
from pathlib import Path

from notebench.server.logs import LOGGER_NAME, LogRouting
from notebench.server.store import Store
from notebench.server.workspace import Workspace
from tests.server_process import ServerProcess

#: papermill has no translator for this kernel: reading its parameters logs a debug record
NOTEBOOK = {
    "nbformat": 4, "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "cobol", "language": "cobol", "display_name": "COBOL"}},
    "cells": [{"cell_type": "code", "id": "p", "metadata": {"tags": ["parameters"]},
               "source": "x = 1", "outputs": [], "execution_count": None}],
}
DEBUG_RECORD = "papermill could not inspect the parameters cell"


def server_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "cobol.ipynb").write_text(json.dumps(NOTEBOOK))
    return root


def read_parameters(server: ServerProcess) -> None:
    status, body = server.request("GET", "lifecycle/parameters?path=cobol.ipynb")
    assert status == 200, body


def log_lines(server: ServerProcess, text: str) -> list[str]:
    """The lines of the server's output (stdout and stderr) that contain ``text``."""
    return [line for line in server.log_path.read_text(errors="replace").splitlines()
            if text in line]


def wait_for_line(server: ServerProcess, text: str, timeout: float = 20.0) -> str:
    """The server writes its log from its own threads: read its output until ``text``."""
    deadline = time.monotonic() + timeout
    while not (found := log_lines(server, text)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the server's log: "
                                 f"{server.log_path.read_text()[-3000:]}")
        time.sleep(0.05)
    return found[0]


def test_the_default_level_shows_warnings_and_info_but_no_debug(tmp_path: Path):
    missing = tmp_path / "missing-rules.yaml"
    server = ServerProcess(server_root(tmp_path),
                           extra=[f"--NotebenchMonitoringService.rules_file={missing}"]).start()
    try:
        read_parameters(server)
        started = wait_for_line(server, "notebench started: workspace")
    finally:
        server.stop()
    # a bad configuration value's warning, printed once by the server's own formatter
    warnings = log_lines(server, "alert rules:")
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("[W ") and " notebench.monitoring]" in warnings[0]
    assert f"{missing}: cannot read the rules file" in warnings[0]
    assert started.startswith("[I ") and " notebench]" in started
    assert not log_lines(server, DEBUG_RECORD)


def test_debug_level_shows_debug_records_and_store_errors(tmp_path: Path):
    root = server_root(tmp_path)
    # a store whose logs table is gone: every record the server stores fails to be written
    workspace = Workspace(root / "notebench")
    workspace.prepare()
    store = Store(workspace.store_path, journal_mode=workspace.journal_mode)
    store.open()
    store.close()
    workspace.release()
    with sqlite3.connect(workspace.store_path) as conn:
        conn.execute("DROP TABLE logs")
    conn.close()
    server = ServerProcess(root, extra=["--log-level=DEBUG"]).start()
    try:
        read_parameters(server)
        store_error = wait_for_line(server, "store write failed: no such table: logs")
    finally:
        server.stop()
    debug = log_lines(server, DEBUG_RECORD)
    assert len(debug) == 1, debug
    assert debug[0].startswith("[D ") and " notebench.jobs]" in debug[0]
    # the store's own records reach the server's log, though never the store
    assert store_error.startswith("[E ") and " notebench.store]" in store_error


def test_closing_the_routing_leaves_the_loggers_as_they_were():
    """Test servers come and go in one process: each leaves the loggers as it found them."""
    output = io.StringIO()
    server_log = logging.getLogger("test_server_log.ServerApp")
    server_log.propagate = False
    handler = logging.StreamHandler(output)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    server_log.addHandler(handler)
    logger = logging.getLogger(LOGGER_NAME)
    before = (logger.parent, logger.level)
    routing = LogRouting(server_log, "WARN")
    routing.open()
    try:
        logging.getLogger("notebench.store").error("commit failed")
        logging.getLogger("notebench.jobs").info("below the server's level")
    finally:
        routing.close()
        server_log.removeHandler(handler)
    assert output.getvalue().splitlines() == ["notebench.store commit failed"]
    assert (logger.parent, logger.level) == before
