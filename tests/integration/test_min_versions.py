"""The lowest versions pyproject.toml allows: do they still run notebench?

``constraints-min.txt`` pins every direct dependency to its floor (torch aside: see that
file). ``make test-min-versions`` (and ``make test``) installs exactly those into a venv of
their own, then the wheel built from this tree, and names that venv in
``NOTEBENCH_MIN_VENV``: these tests start a real server from it, upload through its
multipart parser and import the kernel side there. Without the venv they skip, except the
check that the pins and the floors agree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.integration.assets.conftest import multipart_body
from tests.server_process import ServerProcess
from tests.waiting import wait_until

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = ROOT / "constraints-min.txt"
#: what the lowest-versions venv has not: notebench's core never needs it (the ``torch``
#: extra is for training kernels), so this venv is also a server-only install
LEFT_OUT = {"torch", "safetensors"}


def _floors() -> dict[tuple[str, str], str]:
    """(name, marker) -> the ``>=`` version of each direct dependency in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        lower = [spec.version for spec in req.specifier if spec.operator == ">="]
        assert len(lower) == 1, f"{line}: a floor is a single >= bound"
        floors[(canonicalize_name(req.name), str(req.marker or ""))] = lower[0]
    return floors


def _pins() -> dict[tuple[str, str], str]:
    """(name, marker) -> the ``==`` version of each line of constraints-min.txt."""
    pins = {}
    for raw in CONSTRAINTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        [spec] = req.specifier
        assert spec.operator == "==", f"{line}: constraints-min.txt pins with =="
        pins[(canonicalize_name(req.name), str(req.marker or ""))] = spec.version
    return pins


def _applies(marker: str) -> bool:
    return not marker or Requirement(f"x; {marker}").marker.evaluate()  # type: ignore[union-attr]


def test_constraints_pin_every_floor() -> None:
    floors = {key: Version(v) for key, v in _floors().items()}
    assert {key: Version(v) for key, v in _pins().items()} == floors


@pytest.fixture(scope="module")
def min_python() -> Path:
    venv = os.environ.get("NOTEBENCH_MIN_VENV")
    if not venv:
        pytest.skip("no lowest-versions venv: `make test-min-versions` builds one")
    python = Path(venv) / "bin" / "python"
    assert python.is_file(), f"NOTEBENCH_MIN_VENV={venv} has no bin/python"
    return python


def _run(python: Path, code: str, cwd: Path) -> str:
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=cwd, env={**os.environ, "PYTHONNOUSERSITE": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_min_venv_holds_the_floors(min_python: Path, tmp_path: Path) -> None:
    """Each pin is what is installed there (so the other tests run on the floors)."""
    names = sorted({name for name, marker in _pins() if _applies(marker)} | LEFT_OUT)
    found = json.loads(_run(min_python, (
        "import json, importlib.metadata as m\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return None\n"
        f"print(json.dumps({{n: v(n) for n in {names!r}}}))"), tmp_path))
    expected = {name: version for (name, marker), version in _pins().items() if _applies(marker)}
    assert {name: found[name] for name in expected} == expected
    assert all(found[name] is None for name in LEFT_OUT), found


class MinVersionsServer(ServerProcess):
    """``jupyter server`` with notebench, run by the lowest-versions venv's Python."""

    def __init__(self, python: Path, root_dir: Path) -> None:
        super().__init__(root_dir)
        self.python = python

    def command(self) -> list[str]:
        return [str(self.python), *super().command()[1:]]

    def upload(self, category: str, body: bytes, content_type: str) -> tuple[int, dict]:
        req = urllib.request.Request(
            f"{self.url}notebench/api/assets/upload/{category}", data=body, method="POST",
            headers={"Authorization": f"token {self.token}", "Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


def test_server_runs_on_the_floors(min_python: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    server = MinVersionsServer(min_python, root).start(timeout=120)
    try:
        status, info = server.request("GET", "info")
        assert status == 200, info
        assert info["ready"] is True and info["version"]
        data = b"epoch,loss\n1,0.5\n2,0.25\n"
        body, content_type = multipart_body("floors.csv", data)
        status, asset = server.upload("datasets", body, content_type)
        assert status == 201, asset
        assert asset["name"] == "floors.csv" and asset["size"] == len(data)
        status, hardware = server.request("GET", "hardware")  # without torch here
        assert status == 200, hardware
        assert hardware["torch"]["installed"] is False, hardware["torch"]
        assert hardware["cpu"]["logical_cores"] >= 1
    finally:
        server.stop()


def test_pip_check_is_clean_on_the_floors(min_python: Path, tmp_path: Path) -> None:
    """notebench's declared requirements hold in the venv its floors built, and so do
    every installed package's."""
    result = subprocess.run([str(min_python), "-m", "pip", "check"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kernel_side_imports_on_the_floors(min_python: Path, tmp_path: Path) -> None:
    """``import notebench``, the training API and the dashboard widgets, without torch."""
    out = _run(min_python, (
        "import sys, notebench\n"
        "assert callable(notebench.report)\n"
        "import notebench.widgets.board\n"
        "print('torch' in sys.modules)"), tmp_path)
    assert out.strip() == "False"



def add_kernelspec(folder: Path, name: str, python: str) -> Path:
    """A kernelspec (``JUPYTER_PATH``/kernels/NAME) whose kernel runs ``python``."""
    spec = folder / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": name, "language": "python"}))
    return folder


@pytest.fixture(scope="module")
def lean_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv where ``pip install <wheel>`` resolved everything: the default
    install, as a user gets it (``make test`` names the wheel in ``NOTEBENCH_WHEEL``)."""
    wheel = os.environ.get("NOTEBENCH_WHEEL")
    if not wheel:
        pytest.skip("no wheel named: `make test` sets NOTEBENCH_WHEEL")
    venv = tmp_path_factory.mktemp("lean") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "-c",
                           str(ROOT / "constraints.txt"), wheel],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return python


def test_the_default_install_brings_no_torch_and_pip_check_is_clean(lean_python: Path,
                                                                   tmp_path: Path) -> None:
    found = json.loads(_run(lean_python, (
        "import json, importlib.util as u\n"
        "print(json.dumps({n: bool(u.find_spec(n)) for n in "
        "('torch', 'safetensors', 'jupyterlab', 'voila', 'notebench')}))"), tmp_path))
    assert found == {"torch": False, "safetensors": False, "jupyterlab": True,
                     "voila": True, "notebench": True}
    result = subprocess.run([str(lean_python), "-m", "pip", "check"], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("venv", ["min_python", "lean_python"])
def test_a_kernel_of_another_environment_reports_its_torch(venv: str, tmp_path: Path,
                                                           request: pytest.FixtureRequest
                                                           ) -> None:
    """The server runs without torch (the floors' venv, and the default install); a
    kernelspec names this test venv's Python, which has torch: its facts are that venv's,
    and a job run with that kernel resolves its 'auto' settings from them."""
    from tests.integration.widgets.tiny import write_notebook

    server_python: Path = request.getfixturevalue(venv)
    root = tmp_path / "root"
    root.mkdir()
    jupyter_path = add_kernelspec(tmp_path / "share", "with-torch", sys.executable)
    server = MinVersionsServer(server_python, root)
    environment = server.environment
    server.environment = lambda: {**environment(), "JUPYTER_PATH": str(jupyter_path)}
    server.start(timeout=120)
    try:
        status, own = server.request("GET", "hardware")
        assert status == 200 and own["torch"]["installed"] is False
        assert own["facts_from"]["torch"] == {
            "source": "server", "kernel_name": None, "python": str(server_python),
            "facts": ["torch", "benchmark"]}
        status, kernel = server.request("GET", "hardware?kernel_name=with-torch")
        assert status == 200, kernel
        assert kernel["torch"]["installed"] is True
        assert (kernel["torch"]["version"].split("+")[0]
                == metadata.version("torch").split("+")[0]), kernel["torch"]
        assert kernel["facts_from"]["torch"]["python"] == sys.executable
        assert kernel["facts_from"]["torch"]["kernel_name"] == "with-torch"
        assert kernel["fingerprint"] != own["fingerprint"]
        status, advice = server.request("GET", "hardware/recommendations?kernel_name=with-torch")
        assert status == 200 and advice["facts_from"]["torch"]["kernel_name"] == "with-torch"
        status, error = server.request("GET", "hardware?kernel_name=no-such-kernel")
        assert status == 400 and error["error"]["code"] == "unknown_kernel"

        write_notebook(root / "auto.ipynb", ["print(device, precision)"],
                       parameters="device: str = 'auto'\nprecision: str = 'auto'")
        status, job = server.request("POST", "lifecycle/jobs", {
            "notebook": "auto.ipynb", "kernel_name": "with-torch"})
        assert status == 201, job

        def ended() -> dict | None:
            current = server.request("GET", f"lifecycle/jobs/{job['id']}")[1]
            return current if current["state"] in ("succeeded", "failed") else None

        done = wait_until(ended, timeout=180)
        assert done["state"] == "succeeded", (done["reason"], done["error"])
        for name in ("device", "precision"):
            entry = done["auto"][name]
            assert (entry["kernel_name"], entry["python"]) == ("with-torch", sys.executable)
            assert entry["value"] == advice["settings"][name]["value"], (name, entry)
    finally:
        server.stop()
