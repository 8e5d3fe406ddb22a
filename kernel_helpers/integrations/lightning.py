"""Lightning reporting to notebench: ``NotebenchLogger`` and ``NotebenchCallback``.

``Trainer(logger=NotebenchLogger(), callbacks=[NotebenchCallback()])``:

* the logger sends every logged metric to ``notebench.report()`` (at Lightning's step,
  with the run's total steps once the callback knows them) and the hyperparameters to an
  ``hparams`` event (outside any job or run it starts an interactive run with them as its
  parameters);
* the callback writes Lightning's own checkpoint (the trainer's whole state, resumable
  with ``trainer.fit(..., ckpt_path=resume_checkpoint())``) through ``notebench.checkpoint``
  after every validation (every training epoch without one), keeping the best by the
  monitored metric; a stop request sets ``trainer.should_stop``, and once Lightning has
  ended the epoch the callback writes a ``stopped-step-N`` checkpoint and raises
  ``StopTraining``, so the job ends ``stopped``. With ``model_name`` a completed fit saves
  the model (``notebench.save_model``), which the server registers.

Needs the ``lightning`` package (``pip install 'notebench[lightning]'``).
"""

from __future__ import annotations

import math
from typing import Any

from ._common import RunScope, plain_hparams, record_hparams, require, scalars

require("lightning", "lightning", "lightning")

from lightning.pytorch import LightningModule, Trainer  # noqa: E402
from lightning.pytorch.callbacks import Callback, ModelCheckpoint  # noqa: E402
from lightning.pytorch.loggers import Logger  # noqa: E402
from lightning.pytorch.utilities import rank_zero_only  # noqa: E402

from .. import _jobdir, checkpoints, control, models, tracking  # noqa: E402

__all__ = ["NotebenchCallback", "NotebenchLogger", "resume_checkpoint"]

_report = tracking.report


def resume_checkpoint() -> str | None:
    """The checkpoint a restarted job resumes from (``ckpt_path`` for ``trainer.fit``)."""
    path = _jobdir.resume_from()
    return str(path) if path is not None else None


class NotebenchLogger(Logger):
    """Lightning's logged metrics into ``notebench.report()``, its hyperparameters recorded.

    ``run_name`` names the interactive run it starts when training runs outside any
    job or run under a notebench server.
    """

    def __init__(self, run_name: str | None = None) -> None:
        super().__init__()
        self.total_steps: int | None = None  # set by NotebenchCallback at the fit's start
        self._scope = RunScope(run_name or "lightning")

    @property
    def name(self) -> str:
        return "notebench"

    @property
    def version(self) -> str:
        return _jobdir.job_id() or "local"

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Record the hyperparameters (flattened to JSON values)."""
        values = plain_hparams(params)
        self._scope.open(values)
        record_hparams(values)

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """``notebench.report(step=step, total_steps=..., **metrics)``."""
        _report(step, self.total_steps, **metrics)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Write the buffered points; end the run this logger started."""
        self._scope.close(failed=status == "failed")


class NotebenchCallback(Callback):
    """Checkpoints through ``notebench.checkpoint``, stop requests, the final model.

    ``monitor``/``mode``: the metric the best checkpoint is chosen by (default: the
    trainer's ``ModelCheckpoint``'s, if it monitors one); ``keep``: the last checkpoints
    kept besides the best; ``model_name``: save the model at the end of a completed fit;
    ``raise_on_stop``: end the fit with ``StopTraining`` after a requested stop (the job
    then ends ``stopped`` rather than running its remaining cells' code).
    """

    def __init__(self, monitor: str | None = None, mode: str | None = None, *,
                 keep: int = checkpoints.DEFAULT_KEEP, model_name: str | None = None,
                 raise_on_stop: bool = True) -> None:
        if mode not in (None, *checkpoints.MODES):
            raise ValueError(f"mode must be 'min' or 'max', not {mode!r}")
        self.monitor, self.mode, self.keep = monitor, mode, keep
        self.model_name, self.raise_on_stop = model_name, raise_on_stop
        self.stop_requested = False
        self._saved_step: int | None = None

    # -- the fit ---------------------------------------------------------------------------

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        total = trainer.estimated_stepping_batches
        for logger in trainer.loggers:
            if isinstance(logger, NotebenchLogger):
                logger.total_steps = int(total) if math.isfinite(total) else None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if not self.stop_requested and control.should_stop():
            self.stop_requested = True
            trainer.should_stop = True

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not (trainer.sanity_checking or self.stop_requested or trainer.state.fn != "fit"):
            self._save(trainer, epoch=trainer.current_epoch + 1)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.stop_requested and self._saved_step != trainer.global_step:
            self._save(trainer, epoch=trainer.current_epoch + 1)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.stop_requested:
            # mid-epoch: no whole number of epochs done, the name says the step
            self._save(trainer, name=f"stopped-step-{trainer.global_step}", epoch=None)
            if self.raise_on_stop:
                raise control.StopTraining(f"stopped on request at step {trainer.global_step}")
            return
        if self.model_name and trainer.is_global_zero:
            models.save_model(pl_module, self.model_name,
                              metrics=scalars(trainer.callback_metrics))

    # -- checkpoints -----------------------------------------------------------------------

    def _monitor(self, trainer: Trainer) -> tuple[str | None, str]:
        monitor, mode = self.monitor, self.mode
        lightning_own = trainer.checkpoint_callback
        if monitor is None and isinstance(lightning_own, ModelCheckpoint):
            monitor = lightning_own.monitor
            mode = mode or lightning_own.mode
        return monitor, mode or "min"

    def _save(self, trainer: Trainer, *, epoch: int | None, name: str | None = None) -> None:
        """Lightning's checkpoint of the trainer's state, through ``notebench.checkpoint``."""
        state = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        self._saved_step = trainer.global_step
        if not trainer.is_global_zero:
            return
        metrics = scalars(trainer.callback_metrics)
        monitor, mode = self._monitor(trainer)
        checkpoints.checkpoint(state, name, epoch=epoch, step=trainer.global_step,
                               metrics=metrics, keep=self.keep, mode=mode,
                               monitor=monitor if monitor in metrics else None)
