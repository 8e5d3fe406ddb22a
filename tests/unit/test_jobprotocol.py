"""The job protocol shared by the kernel and the server: names, writes, states, derived fields."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path

import pytest

from notebench import _jobdir, jobprotocol
from notebench.jobprotocol import (
    decode_number,
    encode_number,
    headline,
    headline_metric,
    job_topic,
    nonfinite_kind,
    progress_fraction,
)
from notebench.server.jobs import states


def test_write_json_atomic_syncs_the_file_and_its_folder(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(jobprotocol.os, "fsync", fsync)
    path = tmp_path / "sub" / "control.json"
    jobprotocol.write_json_atomic(path, {"stop": True, "at": Path("x")})
    assert json.loads(path.read_text()) == {"stop": True, "at": "x"}
    assert synced == ["file", "dir"]
    assert [p.name for p in path.parent.iterdir()] == ["control.json"]  # no temp file left


def test_write_json_atomic_refuses_nan_and_keeps_the_old_file(tmp_path: Path):
    path = tmp_path / "manifest.json"
    jobprotocol.write_json_atomic(path, {"v": 1})
    with pytest.raises(ValueError):
        jobprotocol.write_json_atomic(path, {"v": math.nan})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_kernel_and_server_use_the_protocols_names():
    assert _jobdir.write_json_atomic is jobprotocol.write_json_atomic
    assert _jobdir.JOB_DIR_ENV == "NOTEBENCH_JOB_DIR"
    assert states.TERMINAL is jobprotocol.TERMINAL and states.STATES is jobprotocol.STATES
    assert set(jobprotocol.STATES) > jobprotocol.TERMINAL
    assert not jobprotocol.ACTIVE & jobprotocol.TERMINAL
    assert all(not states.TRANSITIONS[s] for s in jobprotocol.TERMINAL)


def test_job_ids_and_topics():
    for kind, prefix in (("papermill", "j-"), ("interactive", "r-")):
        job_id = jobprotocol.new_job_id(kind)
        assert job_id.startswith(prefix) and jobprotocol.is_job_id(job_id)
        assert job_topic(job_id) == f"job:{job_id}"
        assert re.fullmatch(jobprotocol.JOB_TOPIC_PATTERN, job_topic(job_id))
    assert not jobprotocol.is_job_id("j-123")


def test_nonfinite_numbers_round_trip():
    for value, kind in ((math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")):
        encoded = encode_number(value)
        assert encoded == {"nonfinite": kind} and json.dumps(encoded, allow_nan=False)
        assert nonfinite_kind(value) == kind and nonfinite_kind(encoded) == kind
        decoded = decode_number(encoded)
        assert (decoded != decoded) if kind == "nan" else decoded == value
    assert encode_number(1.5) == 1.5 and encode_number(3) == 3 and decode_number(2) == 2
    assert nonfinite_kind({"nonfinite": "huge"}) is None and nonfinite_kind(1.0) is None


def test_headline_prefers_validation_metrics_then_the_shortest_name():
    metrics = {"loss": 0.5, "val_loss": 0.7, "acc": 0.9, "loss_scale": 3, "epoch": 2}
    assert headline(metrics) == {"loss": {"name": "val_loss", "value": 0.7},
                                 "accuracy": {"name": "acc", "value": 0.9}}
    assert headline_metric({"loss": 1.0, "loss_scale": 2.0}, "loss") == {"name": "loss",
                                                                         "value": 1.0}
    # "val" elsewhere in a name is no validation metric; text values never count
    assert headline_metric({"interval_loss": 1.0, "loss": 2.0}, "loss")["name"] == "loss"
    assert headline_metric({"val_loss": "n/a", "loss": 2.0}, "loss")["name"] == "loss"
    assert headline_metric({"Val_Accuracy": 0.8, "accuracy": 0.7}, "acc")["name"] == \
        "Val_Accuracy"
    # a non-finite validation loss stays the headline (shown as NaN, not hidden)
    assert headline({"val_loss": math.nan, "loss": 1.0})["loss"] == {
        "name": "val_loss", "value": {"nonfinite": "nan"}}
    assert headline({}) == {"loss": None, "accuracy": None} == headline(None)


def test_progress_fraction_counts_steps_done_then_cells():
    assert progress_fraction({"step": 4, "total_steps": 10}) == 0.4
    assert progress_fraction({"step": 12, "total_steps": 10}) == 1.0
    assert progress_fraction({"step": 1, "total_steps": 3}) == 0.3333
    assert progress_fraction({"step": 4, "total_steps": 0}) is None
    assert progress_fraction({"cell": 1, "cells": 4, "cell_state": "running"}) == 0.25
    assert progress_fraction({"cell": 1, "cells": 4, "cell_state": "ok"}) == 0.5
    # steps win over cells once reported
    assert progress_fraction({"step": 1, "total_steps": 10, "cell": 3, "cells": 4}) == 0.1
    assert progress_fraction({"step": 1, "total_steps": 10}, "succeeded") == 1.0
    assert progress_fraction({}) is None and progress_fraction({}, "running") is None
