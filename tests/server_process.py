"""A real ``jupyter server`` subprocess with notebench, for restart and ownership tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

#: the repository root: the server imports the test hooks (``tests.server_hooks``) from it
ROOT = Path(__file__).resolve().parents[1]
#: the extensions every test server enables: notebench and its test hooks
EXTENSIONS = ("--ServerApp.jpserver_extensions="
              "{'notebench.server': True, 'tests.server_hooks': True}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """Start, query and kill one server process."""

    def __init__(self, root_dir: Path, *, port: int | None = None, token: str = "test-token",
                 base_url: str = "/", extra: list[str] | None = None) -> None:
        self.root_dir = root_dir
        self.port = port or free_port()
        self.token = token
        self.base_url = base_url
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root_dir.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_url}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
            f"--port={self.port}", "--ServerApp.port_retries=0", "--ip=127.0.0.1",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
            f"--ServerApp.base_url={self.base_url}",
            EXTENSIONS, *self.extra,
        ]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTEBENCH_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        return env

    def start(self, timeout: float = 60) -> ServerProcess:
        """Start the process and wait until notebench says it is ready: the server answers
        while extensions still start, before the workspace is seeded."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         env=self.environment(), start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                answer = self.request("GET", "info")[1]
                if isinstance(answer, dict) and answer.get("ready"):
                    return self
            # not listening yet, or Jupyter answering (HTML) before notebench's routes exist
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}notebench/api/{path}", data=data, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def kill(self) -> None:
        """SIGKILL: the server dies without any clean-up."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
