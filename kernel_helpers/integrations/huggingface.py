"""The Hugging Face ``Trainer`` reporting to notebench: ``NotebenchCallback``.

``Trainer(..., callbacks=[NotebenchCallback()])`` (with ``report_to=[]`` or beside other
reporters):

* every ``on_log`` (training loss, learning rate, evaluation metrics) goes to
  ``notebench.report()`` at the trainer's global step, with its ``max_steps`` as the total;
  the training arguments that are hyperparameters (and the model's config) become an
  ``hparams`` event (outside any job or run, an interactive run's parameters);
* every checkpoint the trainer saves is mirrored through ``notebench.checkpoint``
  (``{"model", "optimizer", "lr_scheduler", "step", "epoch"}``), the best one chosen by
  ``metric_for_best_model`` / ``greater_is_better``;
* a stop request sets ``control.should_training_stop`` (and ``should_save``): the trainer
  saves its checkpoint, mirrored as ``stopped-step-N``, and the callback raises
  ``StopTraining`` at the end of training, so the job ends ``stopped``. With
  ``model_name`` a completed training saves the model (``notebench.save_model``).

Needs the ``transformers`` package (``pip install 'notebench[huggingface]'``).
"""

from __future__ import annotations

from typing import Any

from ._common import RunScope, plain_hparams, record_hparams, require, scalars

require("transformers", "huggingface", "huggingface")

from transformers import TrainerCallback  # noqa: E402

from .. import checkpoints, models, tracking  # noqa: E402
from .. import control as stopping  # noqa: E402  (``control`` is the trainer's, below)

__all__ = ["NotebenchCallback"]

_report = tracking.report

#: the ``TrainingArguments`` recorded as hyperparameters (those a run's result depends on)
HPARAM_ARGS = (
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "per_device_eval_batch_size", "gradient_accumulation_steps", "weight_decay",
    "warmup_steps", "warmup_ratio", "lr_scheduler_type", "optim", "adam_beta1",
    "adam_beta2", "adam_epsilon", "max_grad_norm", "label_smoothing_factor", "seed",
    "fp16", "bf16",
)


class NotebenchCallback(TrainerCallback):
    """Logs, checkpoints and stop requests of a ``transformers.Trainer`` into notebench.

    ``keep``: the last checkpoints kept besides the best; ``model_name``: save the model
    when training completes; ``raise_on_stop``: end ``train()`` with ``StopTraining``
    after a requested stop; ``run_name``: the interactive run started outside any job.
    """

    def __init__(self, *, keep: int = checkpoints.DEFAULT_KEEP, model_name: str | None = None,
                 raise_on_stop: bool = True, run_name: str | None = None) -> None:
        self.keep, self.model_name, self.raise_on_stop = keep, model_name, raise_on_stop
        self.stop_requested = False
        self.latest: dict[str, float | int] = {}  # every metric's last logged value
        self._saved_step: int | None = None
        self._scope = RunScope(run_name or "transformers")

    # -- training --------------------------------------------------------------------------

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None,
                       **kwargs: Any) -> None:
        params = {name: getattr(args, name) for name in HPARAM_ARGS if hasattr(args, name)}
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_diff_dict"):
            params["model"] = config.to_diff_dict()
        values = plain_hparams(params)
        self._scope.open(values)
        record_hparams(values)

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        """``notebench.report(step=global_step, total_steps=max_steps, **numeric logs)``."""
        if not logs or not state.is_world_process_zero:
            return
        values = scalars(logs)
        if values:
            self.latest.update(values)
            _report(state.global_step, state.max_steps or None, **values)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not self.stop_requested and stopping.should_stop():
            self.stop_requested = True
            control.should_training_stop = True
            control.should_save = True

    def on_save(self, args: Any, state: Any, control: Any, model: Any = None,
                optimizer: Any = None, lr_scheduler: Any = None, **kwargs: Any) -> None:
        self._save(args, state, model, optimizer, lr_scheduler)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None,
                     optimizer: Any = None, lr_scheduler: Any = None, **kwargs: Any) -> None:
        try:
            if self.stop_requested:
                if self._saved_step != state.global_step:
                    self._save(args, state, model, optimizer, lr_scheduler)
                if self.raise_on_stop:
                    raise stopping.StopTraining(
                        f"stopped on request at step {state.global_step}")
            elif self.model_name and state.is_world_process_zero and model is not None:
                models.save_model(model, self.model_name, metrics=self.latest)
        finally:
            self._scope.close()

    # -- checkpoints -----------------------------------------------------------------------

    def _save(self, args: Any, state: Any, model: Any, optimizer: Any,
              lr_scheduler: Any) -> None:
        """The trainer's state at this step through ``notebench.checkpoint``."""
        if model is None or not state.is_world_process_zero:
            return
        if self._saved_step == state.global_step:  # saved again at the same step (a stop
            return  # at an epoch's end saves at the step and at the epoch's end)
        self._saved_step = state.global_step
        saved: dict[str, Any] = {"model": model.state_dict(), "step": state.global_step,
                                 "epoch": state.epoch}
        if optimizer is not None:
            saved["optimizer"] = optimizer.state_dict()
        if lr_scheduler is not None:
            saved["lr_scheduler"] = lr_scheduler.state_dict()
        monitor = args.metric_for_best_model
        if monitor and not monitor.startswith("eval_"):
            monitor = f"eval_{monitor}"
        mode = "max" if args.greater_is_better else "min"
        name = f"stopped-step-{state.global_step}" if self.stop_requested else None
        checkpoints.checkpoint(saved, name, step=state.global_step, metrics=self.latest,
                               keep=self.keep, mode=mode,
                               monitor=monitor if monitor in self.latest else None)

