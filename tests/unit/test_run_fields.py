"""``start_run(params=, tags=)``: checked, normalised and written into ``run.json``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import notebench
from notebench import _jobdir, tracking
from notebench.jobprotocol import (
    MAX_RUN_NAME_LENGTH,
    MAX_RUN_PARAMS,
    MAX_RUN_PARAMS_BYTES,
    MAX_RUN_TAGS,
    check_run_fields,
)


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch):
    for name in (_jobdir.JOB_DIR_ENV, _jobdir.JOB_ID_ENV, _jobdir.RUNS_DIR_ENV,
                 _jobdir.RESUME_ENV):
        monkeypatch.delenv(name, raising=False)
    tracking._reset()
    yield
    if tracking.active_run() is not None:
        tracking.active_run().end()
    tracking._reset()


def test_params_and_tags_go_into_run_json(tmp_path: Path) -> None:
    params = {"lr": np.float32(0.25), "layers": (64, 32), "model": "mlp", "dropout": None,
              "opts": {"betas": [0.9, 0.99]}, "epochs": np.int64(3), "w": np.arange(2)}
    run = notebench.start_run("tuned", params=params, tags=["base", "cpu", "base"],
                              runs_dir=tmp_path)
    written = json.loads((tmp_path / str(run.id) / "run.json").read_text())
    expected = {"lr": 0.25, "layers": [64, 32], "model": "mlp", "dropout": None,
                "opts": {"betas": [0.9, 0.99]}, "epochs": 3, "w": [0, 1]}
    assert written["params"] == expected and written["tags"] == ["base", "cpu"]
    assert type(written["params"]["epochs"]) is int
    assert (run.params, run.tags) == (expected, ["base", "cpu"])
    assert written["name"] == "tuned" and written["kind"] == "interactive"
    run.end()


def test_a_run_without_params_or_tags_writes_empty_ones(tmp_path: Path) -> None:
    run = notebench.start_run("plain", runs_dir=tmp_path)
    written = json.loads((tmp_path / str(run.id) / "run.json").read_text())
    assert (written["params"], written["tags"]) == ({}, [])


@pytest.mark.parametrize(("params", "tags", "message"), [
    ([("lr", 1)], None, "params must be a dict"),
    ({1: 2}, None, "a param's name"),
    ({"": 2}, None, "a param's name"),
    ({"x" * (MAX_RUN_NAME_LENGTH + 1): 1}, None, "a param's name"),
    ({"lr": math.nan}, None, "no NaN"),
    ({"f": object()}, None, "must be JSON values"),
    ({f"p{i}": i for i in range(MAX_RUN_PARAMS + 1)}, None, f"at most {MAX_RUN_PARAMS}"),
    ({"big": "x" * MAX_RUN_PARAMS_BYTES}, None, "bytes as JSON"),
    (None, "tag", "tags must be a list"),
    (None, ["ok", ""], "a tag must be"),
    (None, ["ok", 3], "a tag must be"),
    (None, [f"t{i}" for i in range(MAX_RUN_TAGS + 1)], f"at most {MAX_RUN_TAGS} tags"),
])
def test_bad_params_or_tags_are_refused(params, tags, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_run_fields(params, tags)


def test_start_run_refuses_bad_params_before_it_ends_the_active_run(tmp_path: Path) -> None:
    first = notebench.start_run("first", params={"lr": 0.1}, runs_dir=tmp_path)
    with pytest.raises(ValueError, match="no NaN"):
        notebench.start_run("second", params={"lr": math.inf}, runs_dir=tmp_path)
    assert tracking.active_run() is first and first.status is None
    assert [p.name for p in tmp_path.iterdir()] == [first.id]


def test_fields_at_the_bounds_are_accepted() -> None:
    params = {f"p{i}": i for i in range(MAX_RUN_PARAMS)}
    tags = [f"t{i}" for i in range(MAX_RUN_TAGS)]
    assert check_run_fields(params, tags) == (params, tags)
    assert check_run_fields(None, None) == ({}, [])
