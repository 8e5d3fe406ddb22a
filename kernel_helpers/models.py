"""The final model of a job: saved into the job directory with ``manifest.json``, loaded back.

``save_model()`` writes ``model/<name>.safetensors`` when the ``safetensors`` package is
importable, else ``model/<name>.pt`` (``torch.save`` of the state dict), then the manifest
the server registers the model from (docs/job-directory.md). ``load_model()`` reads it back
with ``weights_only=True``.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path
from typing import Any

import orjson

from . import _jobdir, tracking

MODEL_DIR = "model"
_JOB_ID = re.compile(r"^[jr]-[0-9a-f]{12}$")


def _state_dict(model: Any) -> dict[str, Any]:
    state = model.state_dict() if hasattr(model, "state_dict") else model
    if not isinstance(state, dict):
        raise TypeError("save a torch.nn.Module or a state dict")
    return state


def _parameter_count(model: Any, state: dict[str, Any]) -> int:
    if hasattr(model, "parameters"):
        return int(sum(p.numel() for p in model.parameters()))
    return int(sum(v.numel() for v in state.values() if hasattr(v, "numel")))


def _write_model(state: dict[str, Any], path_stem: Path) -> tuple[Path, str]:
    """Write the weights atomically; returns the file and its format."""
    import torch

    if importlib.util.find_spec("safetensors") is not None:
        from safetensors.torch import save_file

        path = path_stem.with_suffix(".safetensors")
        # clones: safetensors refuses tensors that share memory (tied weights)
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()
                   if isinstance(v, torch.Tensor)}
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        save_file(tensors, str(tmp), metadata={"format": "pt"})
        fmt = "safetensors"
    else:
        path = path_stem.with_suffix(".pt")
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        torch.save(state, tmp)
        fmt = "torch"
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _jobdir.fsync_dir(path.parent)
    return path, fmt


def save_model(model: Any, name: str, *, metrics: dict[str, Any] | None = None,
               artifacts: list[str] | None = None) -> Path:
    """Save the final model (a module or state dict) and write ``manifest.json``.

    ``metrics`` are the model's final metrics; ``artifacts`` are other files of the job
    directory (relative paths) to register. Returns the model file's path.
    """
    if not re.fullmatch(r"[\w.-]+", name) or name.startswith("."):
        raise ValueError(f"model name {name!r}: use letters, digits, '.', '_' and '-'")
    state = _state_dict(model)
    root = _jobdir.output_dir()
    (root / MODEL_DIR).mkdir(exist_ok=True)
    path, fmt = _write_model(state, root / MODEL_DIR / name)
    tracking.flush()
    _jobdir.write_json_atomic(root / _jobdir.MANIFEST_FILE, {
        "model": {"path": path.relative_to(root).as_posix(), "name": name,
                  "framework": "pytorch", "format": fmt,
                  "parameters": _parameter_count(model, state),
                  "metrics": tracking.tag_nonfinite(metrics or {})},
        "artifacts": list(artifacts or []),
    })
    return path


def _model_file(source: str | Path) -> Path:
    """A model file from a path, a job directory or a job id (under NOTEBENCH_RUNS_DIR)."""
    text = str(source)
    runs_dir = os.environ.get(_jobdir.RUNS_DIR_ENV)
    path = Path(runs_dir) / text if _JOB_ID.match(text) and runs_dir else Path(text)
    if path.is_dir():
        manifest = orjson.loads((path / _jobdir.MANIFEST_FILE).read_bytes())
        path = path / manifest["model"]["path"]
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    return path


def load_model(source: str | Path, model: Any = None, *, map_location: Any = "cpu") -> Any:
    """The state dict of a saved model (a file, a job directory or a job id).

    With ``model``, loads the weights into it (strictly) and returns the model.
    """
    path = _model_file(source)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path), device=str(map_location))
    else:
        import torch

        state = torch.load(path, map_location=map_location, weights_only=True)
    if model is None:
        return state
    model.load_state_dict(state)
    return model
