"""Notebooks as job sources: templates in the workspace, any notebook under the root.

A ``.py`` script in jupytext's percent format (``# %%`` cells) is read as the notebook
jupytext makes of it: that notebook (an ``.ipynb``) is what a job snapshots and hashes.
Blocking (file reads, jupytext, JSON and nbformat validation): called off the event loop.
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
SCRIPT_SUFFIX = ".py"
#: jupytext's names for a script whose cells start at ``# %%`` lines (hydrogen: the same,
#: with magics left uncommented)
PERCENT_FORMATS = ("percent", "hydrogen")
#: the kernel of a script that names none (a jupytext header's ``kernelspec``)
SCRIPT_KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


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


def _reason(exc: Exception) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    return str(exc).splitlines()[0][:300] if str(exc).strip() else type(exc).__name__


def script_notebook(text: str, display_path: str) -> bytes:
    """The notebook (nbformat JSON) of a percent-format script (400 when it is not one).

    The same script gives the same bytes: cell ids are numbered, not random, so the
    snapshot's hash names the script's content.
    """
    import jupytext
    import nbformat
    from jupytext.formats import guess_format

    try:  # jupytext's parsers on arbitrary text
        name, _ = guess_format(text, SCRIPT_SUFFIX)
        nb = jupytext.reads(text, fmt=f"py:{name}") if name in PERCENT_FORMATS else None
    except Exception as exc:
        raise bad_request(f"{display_path} could not be read as a script: {_reason(exc)}",
                          "invalid_notebook") from None
    if nb is None:
        raise bad_request(f"{display_path} is not in jupytext's percent format: start each "
                          "cell with a '# %%' line (the parameters cell with "
                          "'# %% tags=[\"parameters\"]')", "invalid_notebook")
    for index, cell in enumerate(nb.cells):
        bad = cell.metadata.get("incorrectly_encoded_metadata")
        if bad is not None:
            raise bad_request(f"{display_path}: the header of cell {index + 1} has options "
                              f"jupytext cannot read: {str(bad)[:200]!r} (write them as "
                              "tags=[\"parameters\"])", "invalid_notebook")
        cell["id"] = f"cell-{index}"
    nb.metadata.setdefault("kernelspec", dict(SCRIPT_KERNELSPEC))
    return nbformat.writes(nb).encode("utf-8")


def read_notebook(path: Path, display_path: str, *, validate: bool = False) -> NotebookSource:
    """Read and parse a notebook or a percent-format script (400 when it is neither)."""
    if path.suffix == SCRIPT_SUFFIX:
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request(f"{display_path} is not UTF-8 text", "invalid_notebook") from None
        data = script_notebook(text, display_path)
    elif path.suffix == NOTEBOOK_SUFFIX:
        data = path.read_bytes()
    else:
        raise bad_request(f"{display_path} is not a notebook (.ipynb) or a percent-format "
                          "script (.py)", "invalid_notebook")
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
            raise bad_request(f"{display_path} is not a valid notebook: {_reason(exc)}",
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
