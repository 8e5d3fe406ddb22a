"""A real Hugging Face ``Trainer`` run as a job with NotebenchCallback (docs/integrations.md).

The model is a plain torch module the notebook builds (the ``Trainer`` accepts one that
returns its loss); nothing is downloaded (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import pytest

from .conftest import (
    assert_same_weights,
    events,
    open_job_stream,
    stop_mid_training,
    streamed_points,
    wait_for,
)

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

SETUP = '''
import os
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

import notebench
from notebench.integrations.huggingface import NotebenchCallback

torch.manual_seed(0)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def forward(self, x, labels=None):
        time.sleep(delay)
        logits = self.net(x)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


class Rows(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.x = torch.randn(n, 4, generator=torch.Generator().manual_seed(n))
        self.y = (self.x.sum(1) > 0).long()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "labels": self.y[i]}


class Reference(TrainerCallback):
    """The trainer's weights where training ended, completed or interrupted."""

    def on_train_end(self, args, state, control, model=None, **kwargs):
        torch.save(model.state_dict(), notebench.output_dir() / "reference.pt")
'''

TRAIN = '''
args = TrainingArguments(
    output_dir=str(notebench.output_dir() / "hf"), num_train_epochs=epochs, learning_rate=lr,
    per_device_train_batch_size=16, logging_steps=1, eval_strategy="epoch",
    save_strategy="epoch", metric_for_best_model="loss", greater_is_better=False,
    report_to=[], use_cpu=True, disable_tqdm=True, seed=0)
model = Tiny()
trainer = Trainer(model=model, args=args, train_dataset=Rows(128), eval_dataset=Rows(32),
                  callbacks=[Reference(), NotebenchCallback(model_name="tiny-hf")])
trainer.train()
'''

AFTER = 'Path("after.txt").write_text("ran")'
PARAMETERS = "epochs: int = 2\nlr: float = 0.01\ndelay: float = 0.0"
STEPS_PER_EPOCH = 8


@pytest.fixture(autouse=True)
def _offline():
    """Jobs inherit the server's environment: nothing may be downloaded."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        yield


async def test_trainer_streams_logs_mirrors_checkpoints_and_saves_the_model(
        jobs_api, write_notebook, services, jp_http_port, jp_base_url, jp_auth_header):
    import torch

    import notebench

    path = write_notebook("hf_train", [SETUP, TRAIN, AFTER], PARAMETERS)
    job = await jobs_api.submit(path, parameters={"epochs": 2, "lr": 0.02})
    stream = await open_job_stream(jp_http_port, jp_base_url, jp_auth_header, job["id"])
    done = await jobs_api.wait(job["id"], timeout=150)
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    await stream.read_for(1.0)
    stream.close()
    points = streamed_points(stream)
    losses = [p for p in points if "loss" in p["metrics"]]
    assert [p["step"] for p in losses] == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    assert {"learning_rate", "grad_norm", "epoch"} <= set(losses[0]["metrics"])
    assert [p["step"] for p in points if "eval_loss" in p["metrics"]] == [8, 16]
    assert all(p["total_steps"] == 2 * STEPS_PER_EPOCH for p in points)

    job_dir = services.workspace.path / done["job_dir"]
    [hparams] = events(job_dir, "hparams")
    assert hparams["hparams"]["learning_rate"] == 0.02
    assert hparams["hparams"]["num_train_epochs"] == 2
    checkpoints = await services.jobs.checkpoints(job["id"])
    assert sorted(c["path"] for c in checkpoints) == ["checkpoints/step-00000008.pt",
                                                      "checkpoints/step-00000016.pt"]
    saved = events(job_dir, "checkpoint")
    best = min(saved, key=lambda e: e["metrics"]["eval_loss"])
    index = (job_dir / "checkpoints" / "index.json").read_text()
    assert f'"best": "{best["path"].split("/")[-1]}"' in index or \
        f'"best":"{best["path"].split("/")[-1]}"' in index
    state = notebench.load_checkpoint(job_dir / "checkpoints" / "step-00000016.pt")
    assert state["step"] == 16 and "optimizer" in state and "lr_scheduler" in state

    reference = torch.load(job_dir / "reference.pt", weights_only=True)
    assert_same_weights(notebench.load_model(job_dir), reference)
    assert_same_weights(notebench.load_model(job_dir, which="latest"), reference)
    assert (job_dir / "after.txt").exists()

    async def registered():
        current = await jobs_api.get(job["id"])
        return current if current["model"] else None

    assert (await wait_for(registered, 30))["model"]["name"].startswith("tiny-hf")


async def test_a_stop_ends_training_stopped_with_a_checkpoint_of_the_trainers_weights(
        jobs_api, write_notebook, services):
    path = write_notebook("hf_stop", [SETUP, TRAIN, AFTER], PARAMETERS)
    _stopped, job_dir, step = await stop_mid_training(jobs_api, services, path)
    # the trainer saved its own checkpoint at the stop, which the callback mirrored
    assert (job_dir / "hf" / f"checkpoint-{step}").is_dir()
