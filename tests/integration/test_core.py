"""The extension loads, answers JSON, and errors have one shape."""

from __future__ import annotations

import json

from tests.openapi_check import validate_response


async def test_info_describes_workspace(api, jp_root_dir):
    response = await api("GET", "info")
    assert response.status == 200
    workspace = response.body["workspace"]
    assert workspace["path"] == str((jp_root_dir / "notebench").resolve())
    assert workspace["read_only"] is False
    assert workspace["journal_mode"] == "wal"
    assert "logs" in response.body["events"]["topics"]
    assert response.body["ready"] is True  # seeded and started
    assert response.body["events"]["subscribers"] == 0  # SSE clients only, none yet


async def test_workspace_is_seeded_with_shipped_files(services, jp_root_dir):
    workspace = jp_root_dir / "notebench"
    for folder in ("models", "datasets", "checkpoints", "notebooks", "artifacts"):
        assert (workspace / folder).is_dir()
    assert (workspace / "notebooks" / "welcome.ipynb").is_file()
    assert (workspace / "dashboards" / "dashboard.ipynb").is_file()
    assert (workspace / ".notebench" / "state.sqlite").is_file()


async def test_unknown_api_path_is_json_404(api):
    response = await api("GET", "no/such/thing", validate=False)
    assert response.status == 404
    assert response.body["error"]["code"] == "not_found"
    response = await api("DELETE", "hardware/nothing", validate=False)
    assert response.status == 404
    assert set(response.body) == {"error"}


async def test_bad_json_body_is_400(api):
    response = await api("POST", "_test/publish", b"{not json", validate=False)
    assert response.status == 400
    assert response.body["error"]["code"] == "invalid_json"
    assert "Traceback" not in json.dumps(response.body)


async def test_openapi_document_is_served_and_valid(api):
    response = await api("GET", "openapi.json")
    assert response.status == 200
    assert response.body["openapi"].startswith("3.")
    for path in ("/hardware", "/hardware/benchmark", "/stream", "/info"):
        assert path in response.body["paths"]


def test_validator_rejects_a_wrong_body():
    try:
        validate_response("GET", "/x/notebench/api/info", 200, {"version": 1})
    except AssertionError as exc:
        assert "workspace" in str(exc) or "version" in str(exc)
    else:
        raise AssertionError("an invalid body passed validation")
