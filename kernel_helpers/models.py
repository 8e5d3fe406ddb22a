"""The final model of a job: saved into the job directory with ``manifest.json``, loaded back.

``save_model()`` writes ``model/<name>.safetensors`` when the ``safetensors`` package is
importable, else ``model/<name>.pt`` (``torch.save`` of the state dict), then the manifest
the server registers the model from (docs/job-directory.md). ``load_model()`` reads it back
with ``weights_only=True``: from a file, a job directory, or a job or asset id (through the
server when it is not on this machine).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import orjson

from . import _jobdir, tracking

MODEL_DIR = "model"
_JOB_ID = re.compile(r"^[jr]-[0-9a-f]{12}$")
_ASSET_ID = re.compile(r"^[0-9a-f]{16}$")


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
    from safetensors.torch import save_file

    path = path_stem.with_suffix(".safetensors")
    # clones: safetensors refuses tensors that share memory (tied weights)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()
               if isinstance(v, torch.Tensor)}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    fmt = "safetensors"
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


def _model_file(source: str | Path) -> Path | None:
    """A model file from a path, a job directory or a job id (under NOTEBENCH_RUNS_DIR).

    None when ``source`` names nothing on this machine (ask the server then).
    """
    text = str(source)
    runs_dir = os.environ.get(_jobdir.RUNS_DIR_ENV)
    path = Path(runs_dir) / text if _JOB_ID.match(text) and runs_dir else Path(text)
    if path.is_dir():
        return _file_in_job_dir(path, "model")
    return path if path.is_file() else None


def _file_in_job_dir(job_dir: Path, which: str) -> Path | None:
    """``which`` = "model": the final model (safetensors first), else the best checkpoint,
    else the latest; "best"/"latest": that checkpoint."""
    if which == "model":
        try:
            manifest = orjson.loads((job_dir / _jobdir.MANIFEST_FILE).read_bytes())
            named = job_dir / manifest["model"]["path"]
        except (OSError, ValueError, KeyError, TypeError):
            named = None
        folder = job_dir / MODEL_DIR
        found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.pt")) if \
            folder.is_dir() else []
        if named is not None and named.is_file():
            twin = named.with_suffix(".safetensors")
            return twin if twin.is_file() else named
        if found:
            return found[0]
    index = _checkpoint_index(lambda: (job_dir / _jobdir.CHECKPOINTS_DIR / _jobdir.CHECKPOINT_INDEX
                                       ).read_bytes())
    name = _pick_checkpoint(index, which)
    if name is None:
        return None
    path = job_dir / _jobdir.CHECKPOINTS_DIR / name
    return path if path.is_file() else None


def _checkpoint_index(read: Any) -> dict[str, Any]:
    try:
        index = read()
        index = orjson.loads(index) if isinstance(index, (bytes, str)) else index
    except Exception:
        return {}
    return index if isinstance(index, dict) else {}


def _pick_checkpoint(index: dict[str, Any], which: str) -> str | None:
    if which in ("model", "best") and index.get("best"):
        return str(index["best"])
    return str(index["latest"]) if index.get("latest") else None


def _from_server(source: str, which: str, client: Any, tmp: Path) -> Path:
    """Find ``source`` (a job id or an asset id) through the server; a local file."""
    from .client import ApiError, Client

    c = client or Client()
    if _JOB_ID.match(source):
        job = c.get(f"lifecycle/jobs/{source}")
        workspace = c.info()["workspace"]["path"]
        local = Path(workspace) / job["job_dir"]
        if local.is_dir():  # the same machine: read in place
            found = _file_in_job_dir(local, which)
            if found is not None:
                return found
        files = {f["path"]: f for f in c.get(f"lifecycle/artifacts/{source}")["files"]}
        wanted: str | None = None
        model_path = (job.get("model") or {}).get("path")
        if which == "model":
            models = [p for p in files if p.startswith(MODEL_DIR + "/")]
            safetensors = [p for p in models if p.endswith(".safetensors")]
            wanted = (safetensors[0] if safetensors else model_path if model_path in files
                      else models[0] if models else None)
        if wanted is None:
            index_path = f"{_jobdir.CHECKPOINTS_DIR}/{_jobdir.CHECKPOINT_INDEX}"
            index = _checkpoint_index(lambda: c.get(
                f"lifecycle/artifacts/{source}/{index_path}")) if index_path in files else {}
            name = _pick_checkpoint(index, which)
            wanted = f"{_jobdir.CHECKPOINTS_DIR}/{name}" if name else None
        if wanted is None or wanted not in files:
            raise FileNotFoundError(f"job {source} has no model and no checkpoint")
        data = c.get(f"lifecycle/artifacts/{source}/{wanted}")
        target = tmp / Path(wanted).name
    else:
        try:
            asset = c.get(f"assets/{source}")
        except ApiError as exc:
            raise FileNotFoundError(f"no model file, job or asset {source!r}") from exc
        local = Path(asset.get("path") or "")
        if local.is_file():
            return local
        if local.is_dir():
            found = _file_in_job_dir(local, "model") or next(iter(
                sorted(local.rglob("*.safetensors")) + sorted(local.rglob("*.pt"))), None)
            if found is not None:
                return found
        data = c.get(f"assets/download/{source}")
        target = tmp / (Path(asset.get("rel_path") or asset.get("name") or "model.pt").name)
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, bytes):
        import json

        data = json.dumps(data).encode()
    target.write_bytes(data)
    return target


def _weights(state: Any) -> Any:
    """The model's state dict inside a checkpoint (``{"model": ...}``) or the dict itself."""
    if isinstance(state, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            inner = state.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(k, str) for k in inner):
                return inner
    return state


def load_model(source: str | Path, model: Any = None, *, which: str = "model",
               map_location: Any = "cpu", client: Any = None) -> Any:
    """The state dict of a saved model, loaded with ``weights_only=True``.

    ``source``: a file, a job directory, a job id or an asset id. A job or asset not found
    on this machine is found through the server (``client``, default ``Client()``), and
    its file downloaded when the server's workspace is not reachable from here. Of a job,
    ``which="model"`` loads its final model (safetensors first), falling back to its best
    checkpoint, then its latest; ``"best"``/``"latest"`` load that checkpoint. A
    checkpoint's model weights (its ``"model"`` entry) are what is returned.

    With ``model``, loads the weights into it (strictly) and returns the model.
    """
    import tempfile

    if which not in ("model", "best", "latest"):
        raise ValueError(f"which must be 'model', 'best' or 'latest', not {which!r}")
    text = str(source)
    with tempfile.TemporaryDirectory(prefix="notebench-model-") as tmp:
        path = _model_file(source) if which == "model" else None
        if path is None and Path(text).is_dir():
            path = _file_in_job_dir(Path(text), which)
        if path is None:
            if not (_JOB_ID.match(text) or _ASSET_ID.match(text)):
                raise FileNotFoundError(f"no model file at {text}")
            path = _from_server(text, which, client, Path(tmp))
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device=str(map_location))
        else:
            import torch

            state = _weights(torch.load(path, map_location=map_location, weights_only=True))
    if model is None:
        return state
    model.load_state_dict(state)
    return model
