"""``import notebench`` inside real kernels started by the server."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest


async def run_in_kernel(serverapp: Any, code: str, env: dict[str, str] | None = None) -> str:
    """Execute ``code`` in a new kernel of the server; return its stdout (raise on error)."""
    km = serverapp.kernel_manager
    kwargs = {"env": env} if env is not None else {}
    kernel_id = await km.start_kernel(**kwargs)
    client = km.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        msg_id = client.execute(code)
        output: list[str] = []
        while True:
            msg = await asyncio.wait_for(client.get_iopub_msg(), 120)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                output.append(content["text"])
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(output)
    finally:
        client.stop_channels()
        await km.shutdown_kernel(kernel_id, now=True)


async def test_kernel_finds_its_server_through_the_environment(jp_serverapp, services,
                                                               http_server_client):
    code = (
        "import json, notebench\n"
        "c = notebench.Client()\n"
        "print(json.dumps({'source': c.server.source, 'ws': c.info()['workspace']['path']}))"
    )
    result = json.loads((await run_in_kernel(jp_serverapp, code)).strip().splitlines()[-1])
    assert result["source"] == "environment"
    assert result["ws"] == str(services.workspace.path)


async def test_kernel_finds_its_server_through_the_runtime_file(jp_serverapp, services,
                                                                http_server_client):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTEBENCH_")}
    code = (
        "import json, notebench\n"
        "c = notebench.Client()\n"
        "print(json.dumps({'source': c.server.source, 'ws': c.info()['workspace']['path']}))"
    )
    output = await run_in_kernel(jp_serverapp, code, env=env)
    result = json.loads(output.strip().splitlines()[-1])
    assert result["source"] == "runtime-file"
    assert result["ws"] == str(services.workspace.path)


async def test_profile_and_settings_in_a_kernel_match_the_server(api, jp_serverapp,
                                                                 http_server_client):
    code = (
        "import json, sys, notebench\n"
        "p = notebench.hardware_profile()\n"
        "s = notebench.recommended_settings(p)\n"
        "print(json.dumps({'fp': notebench.hardware.fingerprint(p), 'device': s['device']['value'],"
        " 'torch_imported': 'torch' in sys.modules}))"
    )
    result = json.loads((await run_in_kernel(jp_serverapp, code)).strip().splitlines()[-1])
    server_profile = (await api("GET", "hardware")).body
    assert result["fp"] == server_profile["fingerprint"]
    assert result["device"] == "cpu"
    assert result["torch_imported"] is False


@pytest.mark.parametrize("module", ["notebench", "notebench.hardware", "notebench.client"])
def test_import_is_light(module):
    import subprocess
    import sys

    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'ipywidgets', 'bqplot') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
