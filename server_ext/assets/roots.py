"""Asset categories: where each root is, what it accepts, how big a file may be."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ApiError
from .paths import TMP_DIR, TRASH_DIR
from .sniff import ANY, CATEGORY_TYPES, DIRECTORY, known_type_names

DEFAULT_CATEGORIES = ("models", "datasets", "checkpoints", "notebooks", "artifacts")
GIB = 1024**3
DEFAULT_LIMITS = {"notebooks": 100 * 1024**2}


@dataclass(frozen=True)
class Category:
    """One asset root."""

    name: str
    path: Path
    types: tuple[str, ...]
    max_bytes: int

    @property
    def trash(self) -> Path:
        return self.path / TRASH_DIR

    @property
    def accepts_directories(self) -> bool:
        return DIRECTORY in self.types or ANY in self.types

    def describe(self) -> dict[str, object]:
        return {"category": self.name, "path": str(self.path), "types": list(self.types),
                "max_bytes": self.max_bytes}


def build_categories(workspace_path: Path, *, paths: dict[str, str],
                     types: dict[str, list[str]], limits: dict[str, int],
                     default_limit: int) -> dict[str, Category]:
    """The categories from the defaults and the configuration (unknown type names refused)."""
    known = set(known_type_names())
    names = list(DEFAULT_CATEGORIES) + [n for n in paths if n not in DEFAULT_CATEGORIES]
    categories: dict[str, Category] = {}
    for name in names:
        if not name.isidentifier() or not name.islower():
            raise ValueError(f"asset category names are lower-case identifiers: {name!r}")
        folder = Path(os.path.expanduser(paths.get(name) or workspace_path / name))
        allowed = tuple(types.get(name) or CATEGORY_TYPES.get(name, (ANY,)))
        unknown = set(allowed) - known
        if unknown:
            raise ValueError(f"unknown asset types for {name}: {sorted(unknown)}")
        limit = int(limits.get(name) or DEFAULT_LIMITS.get(name, default_limit))
        categories[name] = Category(name, folder.absolute(), allowed, limit)
    return categories


def prepare_folders(category: Category) -> None:
    """Create the root, its trash and its temp folder (on the root's filesystem)."""
    category.path.mkdir(parents=True, exist_ok=True)
    category.trash.mkdir(exist_ok=True)
    (category.path / TMP_DIR).mkdir(exist_ok=True)


def unknown_category(name: str) -> ApiError:
    return ApiError(404, "unknown_category", "no such asset category")
