"""checkpoint(), load_checkpoint(), save_model() and load_model()."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

import notebench
from notebench import _jobdir, checkpoints, tracking

torch = pytest.importorskip("torch")


def events(job: Path, kind: str) -> list[dict]:
    path = job / "events.jsonl"
    found = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in found if e["kind"] == kind]


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch):
    for name in (_jobdir.JOB_DIR_ENV, _jobdir.JOB_ID_ENV, _jobdir.RUNS_DIR_ENV,
                 _jobdir.RESUME_ENV):
        monkeypatch.delenv(name, raising=False)
    tracking._reset()
    yield
    tracking._reset()


@pytest.fixture
def job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "j-00000000abcd"
    monkeypatch.setenv(_jobdir.JOB_ID_ENV, directory.name)
    monkeypatch.setenv(_jobdir.JOB_DIR_ENV, str(directory))
    return directory


def state(value: float) -> dict:
    return {"model": {"w": torch.full((3,), value)}, "epoch": int(value)}


def test_checkpoint_writes_a_file_an_index_and_an_event(job: Path) -> None:
    notebench.report(step=1, loss=1.0)
    notebench.report(step=2, loss=0.5)  # buffered: the checkpoint writes it first
    path = notebench.checkpoint(state(1), epoch=1, step=2, metrics={"val_loss": 0.5})
    assert path == job / "checkpoints" / "epoch-0001.pt"
    assert sorted(p.name for p in path.parent.iterdir()) == ["epoch-0001.pt", "index.json"]
    [event] = events(job, "checkpoint")
    assert event == {**event, "path": "checkpoints/epoch-0001.pt", "epoch": 1, "step": 2,
                     "metrics": {"val_loss": 0.5}, "best": False}
    assert [e["step"] for e in events(job, "metrics")] == [1, 2]
    index = json.loads((path.parent / "index.json").read_text())
    assert index["latest"] == "epoch-0001.pt"
    loaded = notebench.load_checkpoint()
    assert torch.equal(loaded["model"]["w"], torch.full((3,), 1.0)) and loaded["epoch"] == 1


def test_names(job: Path) -> None:
    assert notebench.checkpoint(state(1), step=7).name == "step-00000007.pt"
    assert notebench.checkpoint(state(1)).name.startswith("checkpoint-")
    assert notebench.checkpoint(state(1), "last").name == "last.pt"
    assert notebench.checkpoint(state(2), "last").name == "last.pt"  # replaced in place
    assert notebench.load_checkpoint()["epoch"] == 2
    for bad in (".hidden", ""):
        with pytest.raises(ValueError):
            notebench.checkpoint(state(1), bad)


def test_keeps_the_last_k(job: Path) -> None:
    for epoch in range(1, 6):
        notebench.checkpoint(state(epoch), epoch=epoch, keep=2)
    files = sorted(p.name for p in (job / "checkpoints").glob("*.pt"))
    assert files == ["epoch-0004.pt", "epoch-0005.pt"]
    assert len(events(job, "checkpoint")) == 5


def test_keeps_the_best_when_later_epochs_are_worse(job: Path) -> None:
    losses = [0.9, 0.3, 0.5, math.nan, 0.7, 0.8]
    for epoch, loss in enumerate(losses, start=1):
        notebench.checkpoint(state(epoch), epoch=epoch, keep=2, metrics={"val_loss": loss},
                             monitor="val_loss")
    files = sorted(p.name for p in (job / "checkpoints").glob("*.pt"))
    assert files == ["epoch-0002.pt", "epoch-0005.pt", "epoch-0006.pt"]
    assert [e["best"] for e in events(job, "checkpoint")] == [True, True] + [False] * 4
    assert events(job, "checkpoint")[3]["metrics"] == {"val_loss": {"nonfinite": "nan"}}
    assert notebench.load_checkpoint(which="best")["epoch"] == 2
    assert notebench.load_checkpoint()["epoch"] == 6
    assert checkpoints.checkpoint_path("best") == job / "checkpoints" / "epoch-0002.pt"


def test_mode_max_and_bad_arguments(job: Path) -> None:
    for epoch, accuracy in enumerate([0.5, 0.9, 0.7], start=1):
        notebench.checkpoint(state(epoch), epoch=epoch, metrics={"acc": accuracy},
                             monitor="acc", mode="max")
    assert notebench.load_checkpoint(which="best")["epoch"] == 2
    with pytest.raises(ValueError, match="monitor"):
        notebench.checkpoint(state(1), metrics={"acc": 1.0}, monitor="loss")
    with pytest.raises(ValueError, match="mode"):
        notebench.checkpoint(state(1), mode="lowest")
    with pytest.raises(ValueError, match="keep"):
        notebench.checkpoint(state(1), keep=0)


def test_a_restarted_job_loads_the_parents_checkpoint(job: Path, tmp_path: Path,
                                                      monkeypatch) -> None:
    parent = tmp_path / "parent.pt"
    torch.save(state(4), parent)
    monkeypatch.setenv(_jobdir.RESUME_ENV, str(parent))
    notebench.checkpoint(state(9), epoch=9)
    assert notebench.load_checkpoint()["epoch"] == 4  # the parent's, as the template wants
    monkeypatch.setenv(_jobdir.RESUME_ENV, str(tmp_path / "gone.pt"))
    with pytest.raises(FileNotFoundError):
        notebench.load_checkpoint()


def test_nothing_to_load_gives_none(job: Path) -> None:
    assert notebench.load_checkpoint() is None


def test_loading_uses_weights_only(job: Path) -> None:
    notebench.checkpoint({"object": Path("x")}, "unsafe")
    with pytest.raises(Exception, match=r"[Ww]eights only"):
        notebench.load_checkpoint()


def test_outside_a_job_only_this_process_checkpoints_count(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    stale = tmp_path / "notebench-output" / "checkpoints"
    stale.mkdir(parents=True)
    torch.save(state(5), stale / "epoch-0005.pt")
    (stale / "index.json").write_text(json.dumps({
        "latest": "epoch-0005.pt", "best": None,
        "checkpoints": [{"file": "epoch-0005.pt", "metrics": {}}]}))
    assert notebench.load_checkpoint() is None  # an earlier local run is not resumed
    path = notebench.checkpoint(state(1), epoch=1)
    assert path.parent == stale.resolve() or path.parent == stale
    assert notebench.load_checkpoint()["epoch"] == 1
    assert tracking.history() == []  # a checkpoint outside a job is not a metric point


# -- the final model ------------------------------------------------------------------------


def test_save_model_writes_the_manifest_and_loads_back(job: Path, monkeypatch) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    path = notebench.save_model(model, "tiny", metrics={"acc": 0.75, "loss": math.inf},
                                artifacts=["metrics.csv"])
    manifest = json.loads((job / "manifest.json").read_text())
    has_safetensors = importlib.util.find_spec("safetensors") is not None
    suffix = ".safetensors" if has_safetensors else ".pt"
    assert manifest == {"model": {"path": f"model/tiny{suffix}", "name": "tiny",
                                  "framework": "pytorch",
                                  "format": "safetensors" if has_safetensors else "torch",
                                  "parameters": 4 * 3 + 3 + 3 + 3,
                                  "metrics": {"acc": 0.75, "loss": {"nonfinite": "inf"}}},
                        "artifacts": ["metrics.csv"]}
    assert path == job / manifest["model"]["path"]
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    notebench.load_model(job, fresh)
    for name, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], value)
    monkeypatch.setenv(_jobdir.RUNS_DIR_ENV, str(job.parent))
    assert set(notebench.load_model(job.name)) == set(model.state_dict())
    assert set(notebench.load_model(path)) == set(model.state_dict())
    with pytest.raises(ValueError):
        notebench.save_model(model, "../escape")
