"""Notebooks as job sources: templates in the workspace, any notebook under the root.

Blocking (file reads, JSON and nbformat validation): called off the event loop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from ..errors import ApiError, bad_request
from .params import ParametersCell, cell_source, notebook_parameters

NOTEBOOK_SUFFIX = ".ipynb"


@dataclass
class NotebookSource:
    """A notebook read for inspection or submission."""

    path: Path
    display_path: str  # relative to the server root, or to the workspace's notebooks/
    data: bytes
    nb: dict[str, Any]
    cell: ParametersCell

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def kernel_name(self) -> str | None:
        spec = (self.nb.get("metadata") or {}).get("kernelspec") or {}
        return spec.get("name") or None

    def description(self) -> str:
        meta = (self.nb.get("metadata") or {}).get("notebench") or {}
        if isinstance(meta, dict) and meta.get("description"):
            return str(meta["description"])
        for cell in self.nb.get("cells") or []:
            if cell.get("cell_type") != "markdown":
                continue
            lines = [ln.strip() for ln in cell_source(cell).splitlines() if ln.strip()]
            text = [ln for ln in lines if not ln.startswith("#")]
            if text:
                return text[0][:500]
            if lines:
                return lines[0].lstrip("#").strip()[:500]
        return ""


def safe_child(root: Path, relative: str) -> Path:
    """``relative`` resolved inside ``root`` (404 when it leaves it or does not exist)."""
    if not relative or "\x00" in relative or any(ord(c) < 32 for c in relative):
        raise ApiError(404, "not_found", "no such notebook")
    if PurePosixPath(relative).is_absolute():
        raise ApiError(404, "not_found", "no such notebook")
    base = root.resolve()
    try:
        target = (base / relative).resolve()
    except (OSError, RuntimeError):
        raise ApiError(404, "not_found", "no such notebook") from None
    if not target.is_relative_to(base) or not target.is_file():
        raise ApiError(404, "not_found", "no such notebook")
    return target


def read_notebook(path: Path, display_path: str, *, validate: bool = False) -> NotebookSource:
    """Read and parse a notebook (400 when it is not one)."""
    if path.suffix != NOTEBOOK_SUFFIX:
        raise bad_request(f"{display_path} is not a notebook (.ipynb)", "invalid_notebook")
    data = path.read_bytes()
    try:
        nb = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"{display_path} is not valid JSON: {exc}", "invalid_notebook") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise bad_request(f"{display_path} is not a notebook", "invalid_notebook")
    if validate:
        import nbformat

        try:
            node = nbformat.reads(data.decode("utf-8"), as_version=4)
            nbformat.validate(node)
        except Exception as exc:
            message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise bad_request(f"{display_path} is not a valid notebook: {message}",
                              "invalid_notebook") from None
    return NotebookSource(path, display_path, data, nb, notebook_parameters(nb))


def list_templates(notebooks_dir: Path) -> list[NotebookSource]:
    """Notebooks of the workspace's ``notebooks/`` that have a parameters cell."""
    found = []
    if not notebooks_dir.is_dir():
        return found
    for path in sorted(notebooks_dir.glob("*" + NOTEBOOK_SUFFIX)):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            source = read_notebook(path, path.name)
        except (ApiError, OSError):
            continue
        if source.cell.index is not None:
            found.append(source)
    return found


def template_path(notebooks_dir: Path, name: str) -> Path:
    """The notebook of a template name (``digits-cnn`` or ``digits-cnn.ipynb``)."""
    stem = name[: -len(NOTEBOOK_SUFFIX)] if name.endswith(NOTEBOOK_SUFFIX) else name
    if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
        raise bad_request(f"unknown template: {name}", "unknown_template")
    path = notebooks_dir / (stem + NOTEBOOK_SUFFIX)
    if not path.is_file():
        raise bad_request(f"unknown template: {name}", "unknown_template")
    return path


def describe_template(source: NotebookSource, estimate: tuple[float, int] | None
                      ) -> dict[str, Any]:
    return {
        "name": source.path.stem,
        "path": source.display_path,
        "description": source.description(),
        "kernel_name": source.kernel_name,
        "parameters": [p.describe() for p in source.cell.parameters],
        "problems": source.cell.problems,
        "estimated_seconds": None if estimate is None else round(estimate[0], 1),
        "runs": 0 if estimate is None else estimate[1],
    }
