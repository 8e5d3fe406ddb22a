"""A real Lightning fit as a job: NotebenchLogger and NotebenchCallback (docs/integrations.md)."""

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

pytest.importorskip("lightning")

SETUP = '''
import time
from pathlib import Path

import lightning as L
import torch
from torch import nn

import notebench
from notebench.integrations.lightning import NotebenchCallback, NotebenchLogger

L.seed_everything(0, verbose=False)
x = torch.randn(256, 4)
y = (x.sum(1) > 0).long()
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32)


class Tiny(L.LightningModule):
    def __init__(self, lr: float = 0.05, width: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 2))

    def training_step(self, batch, index):
        time.sleep(delay)
        loss = nn.functional.cross_entropy(self.net(batch[0]), batch[1])
        self.log("loss", loss)
        return loss

    def validation_step(self, batch, index):
        self.log("val_loss", nn.functional.cross_entropy(self.net(batch[0]), batch[1]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Reference(L.Callback):
    """The trainer's weights where the fit ended, completed or interrupted."""

    def keep(self, module):
        torch.save(module.state_dict(), notebench.output_dir() / "reference.pt")

    def on_fit_end(self, trainer, module):
        self.keep(module)

    def on_exception(self, trainer, module, exception):
        self.keep(module)
'''

FIT = '''
model = Tiny(width=width)
trainer = L.Trainer(max_epochs=epochs, logger=NotebenchLogger(),
                    callbacks=[Reference(), NotebenchCallback(monitor="val_loss",
                                                              model_name="tiny")],
                    enable_checkpointing=False, log_every_n_steps=1, accelerator="cpu",
                    enable_progress_bar=False, enable_model_summary=False)
trainer.fit(model, loader, loader)
'''

AFTER = 'Path("after.txt").write_text("ran")'
PARAMETERS = "epochs: int = 2\nwidth: int = 8\ndelay: float = 0.0"
STEPS_PER_EPOCH = 8


async def test_lightning_fit_streams_metrics_registers_checkpoints_and_the_model(
        jobs_api, write_notebook, services, jp_http_port, jp_base_url, jp_auth_header):
    import torch

    import notebench

    path = write_notebook("lightning_fit", [SETUP, FIT, AFTER], PARAMETERS)
    job = await jobs_api.submit(path, parameters={"epochs": 2, "width": 6})
    stream = await open_job_stream(jp_http_port, jp_base_url, jp_auth_header, job["id"])
    done = await jobs_api.wait(job["id"], timeout=150)
    assert done["state"] == "succeeded", (done["reason"], done["error"])
    await stream.read_for(1.0)
    stream.close()
    points = streamed_points(stream)
    losses = [p for p in points if "loss" in p["metrics"]]
    # Lightning's own step: the index of the optimizer step the value was logged at
    assert [p["step"] for p in losses] == list(range(2 * STEPS_PER_EPOCH))
    assert all(p["total_steps"] == 2 * STEPS_PER_EPOCH for p in points)
    assert sum("val_loss" in p["metrics"] for p in points) == 2
    assert done["progress"]["total_steps"] == 2 * STEPS_PER_EPOCH

    job_dir = services.workspace.path / done["job_dir"]
    [hparams] = events(job_dir, "hparams")
    assert hparams["hparams"] == {"lr": 0.05, "width": 6}
    checkpoints = await services.jobs.checkpoints(job["id"])
    assert sorted(c["path"] for c in checkpoints) == ["checkpoints/epoch-0001.pt",
                                                      "checkpoints/epoch-0002.pt"]
    index = notebench.models._checkpoint_index(
        lambda: (job_dir / "checkpoints" / "index.json").read_bytes())
    assert index["monitor"] == "val_loss" and index["best"] in ("epoch-0001.pt", "epoch-0002.pt")
    saved = [e for e in events(job_dir, "checkpoint")]
    best = min(saved, key=lambda e: e["metrics"]["val_loss"])
    assert index["best"] == best["path"].split("/")[-1]
    # the checkpoint is Lightning's own (resumable with ckpt_path), loadable weights-only
    state = notebench.load_checkpoint(job_dir / "checkpoints" / "epoch-0002.pt")
    assert state["global_step"] == 2 * STEPS_PER_EPOCH and "optimizer_states" in state

    reference = torch.load(job_dir / "reference.pt", weights_only=True)
    assert_same_weights(notebench.load_model(job_dir), reference)
    assert_same_weights(notebench.load_model(job_dir, which="latest"), reference)
    assert (job_dir / "after.txt").exists()

    async def registered():
        current = await jobs_api.get(job["id"])
        return current if current["model"] else None

    assert (await wait_for(registered, 30))["model"]["name"].startswith("tiny")


async def test_a_stop_ends_the_fit_stopped_with_a_checkpoint_of_the_trainers_weights(
        jobs_api, write_notebook, services):
    path = write_notebook("lightning_stop", [SETUP, FIT, AFTER], PARAMETERS)
    _stopped, job_dir, step = await stop_mid_training(jobs_api, services, path)
    assert step >= 5 and step < 500 * STEPS_PER_EPOCH
    assert [e["kind"] for e in events(job_dir, "stopping")] == ["stopping"]
