"""Resolve a training notebook's "auto" parameters for this machine.

``resolve_settings(batch_size="auto", num_workers="auto", device="auto", precision="auto")``
takes each "auto" value from ``notebench.hardware.recommended_settings()`` (the profile's
heuristics, with torch facts taken in this process) and, given the model and a sample
batch, measures the batch size with ``auto_batch_size()``. Values given explicitly are
checked and kept. Inside a job the result is recorded as a ``settings`` event.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from . import _jobdir, tracking
from .batch_size import BatchSizeResult, auto_batch_size

AUTO = "auto"
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
_PRECISION_ALIASES = {"32": "32", "fp32": "32", "32-true": "32", "bf16": "bf16-mixed",
                      "bf16-mixed": "bf16-mixed", "16": "16-mixed", "fp16": "16-mixed",
                      "16-mixed": "16-mixed"}
NAMES = ("device", "precision", "batch_size", "num_workers")


@dataclass
class Settings:
    """Resolved training settings, each with where it came from and why."""

    device: str
    precision: str
    batch_size: int
    num_workers: int
    reasons: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # given | recommended | measured
    batch_search: BatchSizeResult | None = None

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """``{name: {"value", "source", "reason"}}`` (JSON-ready)."""
        return {name: {"value": getattr(self, name), "source": self.sources.get(name),
                       "reason": self.reasons.get(name)} for name in NAMES}

    def autocast(self) -> Any:
        """The autocast context of ``precision`` on ``device`` (a no-op for fp32)."""
        import torch

        dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(self.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=dtype)

    def grad_scaler(self) -> Any:
        """A ``GradScaler`` for fp16 training on CUDA, else a disabled one."""
        import torch

        kind = torch.device(self.device).type
        return torch.amp.GradScaler(kind, enabled=self.precision == "16-mixed" and kind == "cuda")

    def loader_kwargs(self) -> dict[str, Any]:
        """``DataLoader`` arguments for these settings."""
        import torch

        cuda = torch.device(self.device).type == "cuda"
        return {"batch_size": self.batch_size, "num_workers": self.num_workers,
                "pin_memory": cuda, "persistent_workers": self.num_workers > 0}


def _profile_settings() -> dict[str, dict[str, Any]]:
    """Recommended settings from a profile whose torch facts come from this process."""
    from .hardware import recommended_settings
    from .hardware.profile import hardware_profile
    from .hardware.torch_probe import collect

    return recommended_settings(hardware_profile(torch_info=collect()))


def _is_auto(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() == AUTO)


def _as_int(name: str, value: Any, minimum: int) -> int:
    try:
        number = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer or 'auto', not {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, not {number}")
    return number


def _thread_cap() -> int | None:
    value = os.environ.get("NOTEBENCH_NUM_THREADS")
    return int(value) if value and value.isdigit() else None


def resolve_settings(*, batch_size: int | str = AUTO, num_workers: int | str = AUTO,
                     device: str = AUTO, precision: str = AUTO, model: Any = None,
                     sample_batch: Any = None, loss_fn: Any = None,
                     max_batch: int | None = None, data_in_memory: bool = False,
                     measure: bool = True, recommended: dict[str, Any] | None = None,
                     record: bool = True, **search: Any) -> Settings:
    """Resolve every "auto" parameter; explicit values are validated and kept.

    ``batch_size="auto"`` is measured with ``auto_batch_size(model, sample_batch, ...)``
    when both are given and ``measure`` (the model is moved to the resolved device first;
    extra keyword arguments go to ``auto_batch_size``), else taken
    from the profile's heuristic; ``max_batch`` caps it either way. ``data_in_memory``:
    the dataset is tensors already in memory, so ``num_workers="auto"`` is 0.
    ``recommended`` replaces ``recommended_settings()`` (tests, or a stored profile).
    """
    reasons: dict[str, str] = {}
    sources: dict[str, str] = {}
    rec: dict[str, Any] | None = recommended

    def recommend(name: str) -> dict[str, Any]:
        nonlocal rec
        if rec is None:
            rec = _profile_settings()
        return rec[name]

    if _is_auto(device):
        device = str(recommend("device")["value"])
        reasons["device"], sources["device"] = recommend("device")["reason"], "recommended"
    else:
        device = str(device).strip()
        reasons["device"], sources["device"] = "given", "given"

    if _is_auto(precision):
        suggested = recommend("precision")
        if device.split(":")[0] == str(recommend("device")["value"]):
            precision, reasons["precision"] = str(suggested["value"]), suggested["reason"]
        else:
            precision = "32"
            reasons["precision"] = f"device {device!r} is not the recommended one: fp32 is safe"
        sources["precision"] = "recommended"
    else:
        key = str(precision).strip().lower()
        if key not in _PRECISION_ALIASES:
            raise ValueError(f"precision must be 'auto' or one of {PRECISIONS}, not {precision!r}")
        precision = _PRECISION_ALIASES[key]
        reasons["precision"], sources["precision"] = "given", "given"

    batch_search: BatchSizeResult | None = None
    if not _is_auto(batch_size):
        batch_size = _as_int("batch_size", batch_size, 1)
        reasons["batch_size"], sources["batch_size"] = "given", "given"
    elif measure and model is not None and sample_batch is not None:
        options = dict(search)
        if max_batch is not None:
            options["max_batch"] = max_batch
        model.to(device)
        batch_search = auto_batch_size(model, sample_batch, loss_fn=loss_fn,
                                       precision=precision, **options)
        batch_size = batch_search.batch_size
        reasons["batch_size"], sources["batch_size"] = batch_search.reason, "measured"
    else:
        suggested = recommend("batch_size")
        batch_size = int(suggested["value"])
        reasons["batch_size"] = suggested["reason"]
        if max_batch is not None and batch_size > max_batch:
            batch_size = max(1, max_batch)
            reasons["batch_size"] += f"; capped at max_batch={max_batch}"
        sources["batch_size"] = "recommended"

    if not _is_auto(num_workers):
        num_workers = _as_int("num_workers", num_workers, 0)
        reasons["num_workers"], sources["num_workers"] = "given", "given"
    elif data_in_memory:
        num_workers = 0
        reasons["num_workers"] = "the dataset is already in memory: worker processes only add cost"
        sources["num_workers"] = "recommended"
    else:
        suggested = recommend("num_workers")
        num_workers, reasons["num_workers"] = int(suggested["value"]), suggested["reason"]
        cap = _thread_cap()
        if cap is not None and num_workers > max(0, cap - 1):
            num_workers = max(0, cap - 1)
            reasons["num_workers"] += f"; capped by the job's {cap} CPU threads"
        sources["num_workers"] = "recommended"

    settings = Settings(device, precision, int(batch_size), int(num_workers), reasons, sources,
                        batch_search)
    if record and _jobdir.job_dir() is not None:
        tracking.emit("settings", settings=settings.as_dict())
    return settings
