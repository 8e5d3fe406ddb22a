"""A real server in a subprocess, shared by the module; panels run in the test process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.widgets.tiny import serving
from tests.server_process import ServerProcess
from tests.synchronous import jp_asyncio_loop, jp_server_cleanup  # noqa: F401


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("widgets")
    imports = base / "imports"
    imports.mkdir()
    (imports / "table.csv").write_text("a,b\n1,2\n3,4\n")
    with serving(base / "root", f"--NotebenchAssetRegistry.import_dirs={imports}") as proc:
        proc.import_dir = imports  # type: ignore[attr-defined]
        yield proc


@pytest.fixture
def client(server: ServerProcess) -> Any:
    from notebench import Client

    return Client(server.url, server.token)


@pytest.fixture
def panels() -> Iterator[list[Any]]:
    """Panels a test made; closed afterwards (their feed threads end)."""
    made: list[Any] = []
    yield made
    for panel in made:
        panel.close()


@pytest.fixture
def import_dir(server: ServerProcess) -> Path:
    return server.import_dir  # type: ignore[attr-defined]
