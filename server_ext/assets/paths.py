"""The one path validator of the asset registry.

Every name or path that reaches the registry (upload names, register/import paths,
list prefixes, restore targets) goes through here. The rules:

- a name is one component: no separator (``/`` or ``\\``), no NUL, control, format
  (bidi overrides, zero-width) or line-separator character, not ``.``/``..``, no
  leading/trailing whitespace, at most 255 UTF-8 bytes, no ``%XX`` escape (a name that
  would mean something else after one more decoding is refused), and nothing that
  folds (NFKC) into a separator or a dot-dot; it is stored NFC-normalised;
- hidden names (a leading dot, also after NFKC folding) follow jupyter_server's
  ``allow_hidden``; the registry's own folders (``.trash``, ``.notebench-tmp``) are
  always refused;
- a relative path is such names joined by ``/``;
- on disk, no component may be a symbolic link, and the resolved path must be
  ``is_relative_to`` the resolved root (never a string-prefix check). Files are opened
  by walking directory descriptors with ``O_NOFOLLOW``, so a link swapped in after the
  check is not followed either.

Refusals of the syntax are ``400 invalid_name``/``invalid_path``; anything that depends on
the disk is ``404 not_found`` with the same message whether or not a target exists.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import unicodedata
from pathlib import Path, PurePosixPath

from ..errors import ApiError

MAX_NAME_BYTES = 255
MAX_PATH_CHARS = 4096
MAX_DEPTH = 64
TRASH_DIR = ".trash"
TMP_DIR = ".notebench-tmp"
RESERVED = frozenset({TRASH_DIR, TMP_DIR, ".notebench"})

_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
NOT_FOUND_MESSAGE = "no such asset path in this root"


def invalid_name(message: str) -> ApiError:
    return ApiError(400, "invalid_name", message)


def invalid_path(message: str) -> ApiError:
    return ApiError(400, "invalid_path", message)


def path_not_found() -> ApiError:
    """The one answer for a path that is missing, outside the root or through a link."""
    return ApiError(404, "not_found", NOT_FOUND_MESSAGE)


def name_exists(message: str = "a file with this name exists (send overwrite=true to move "
                               "it to the trash)") -> ApiError:
    return ApiError(409, "name_exists", message)


def job_folder_refused() -> ApiError:
    return ApiError(403, "job_directory",
                    "the jobs folder and job directories belong to the jobs, not to the "
                    "asset registry (a job's files are registered by the job; trash a job "
                    "with DELETE lifecycle/jobs/{id})")


def hard_link_refused() -> ApiError:
    return ApiError(403, "hard_link_refused",
                    "the file has other hard links (they may lead outside the root)")


def check_name(raw: str, *, allow_hidden: bool = False) -> str:
    """One valid file name (NFC), or ``400 invalid_name``."""
    if not isinstance(raw, str) or not raw:
        raise invalid_name("the name is empty")
    name = unicodedata.normalize("NFC", raw)
    for char in name:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise invalid_name("the name contains a control, invisible or unassigned character")
    if "/" in name or "\\" in name:
        raise invalid_name("the name contains a path separator")
    if name in (".", ".."):
        raise invalid_name("the name is a relative path marker")
    if name != name.strip():
        raise invalid_name("the name starts or ends with whitespace")
    if _ESCAPE.search(name):
        raise invalid_name("the name contains a percent-encoded character")
    folded = unicodedata.normalize("NFKC", name)
    if "/" in folded or "\\" in folded or folded.startswith(".."):
        raise invalid_name("the name looks like a path")
    if name in RESERVED or folded in RESERVED:
        raise invalid_name("the name is reserved by notebench")
    if (name.startswith(".") or folded.startswith(".")) and not allow_hidden:
        raise invalid_name("hidden names are not allowed (ContentsManager.allow_hidden)")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise invalid_name(f"the name is longer than {MAX_NAME_BYTES} bytes")
    return name


def check_relpath(raw: str, *, allow_hidden: bool = False) -> PurePosixPath:
    """A relative path of valid names, or ``400 invalid_path``."""
    if not isinstance(raw, str) or not raw:
        raise invalid_path("the path is empty")
    if len(raw) > MAX_PATH_CHARS:
        raise invalid_path("the path is too long")
    if "\\" in raw:
        raise invalid_path("the path contains a backslash")
    if raw.startswith("/") or raw.startswith("~"):
        raise invalid_path("the path must be relative to the root")
    parts = raw.split("/")
    if len(parts) > MAX_DEPTH:
        raise invalid_path("the path is too deep")
    names = []
    for part in parts:
        if part in ("", ".", ".."):
            raise invalid_path("the path has an empty, '.' or '..' component")
        try:
            names.append(check_name(part, allow_hidden=allow_hidden))
        except ApiError as exc:
            raise invalid_path(exc.message.replace("the name", "a path component")) from None
    return PurePosixPath(*names)


def real_root(root: Path) -> Path:
    """The root with its own symlinks resolved (a root may itself be a link elsewhere)."""
    return Path(os.path.realpath(root))


def locate(root: Path, rel: PurePosixPath, *, must_exist: bool = True) -> Path:
    """The absolute path of ``rel`` inside ``root``: no link on the way, contained.

    A missing final component is allowed with ``must_exist=False`` (a target to create),
    a missing parent is not.
    """
    base = real_root(root)
    current = base
    last = len(rel.parts) - 1
    for index, part in enumerate(rel.parts):
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            if index == last and not must_exist:
                break
            raise path_not_found() from None
        except OSError:
            raise path_not_found() from None
        if stat.S_ISLNK(mode) or (index < last and not stat.S_ISDIR(mode)):
            raise path_not_found()
    resolved = Path(os.path.realpath(current))
    if not resolved.is_relative_to(base) or resolved == base:
        raise path_not_found()
    return resolved


def relative_to_root(root: Path, path: Path) -> PurePosixPath:
    """``path`` (absolute, inside ``root``) as a validated-later relative path, or 404."""
    base = real_root(root)
    absolute = Path(os.path.abspath(path))
    for candidate in (absolute, Path(os.path.realpath(absolute.parent)) / absolute.name):
        if candidate.is_relative_to(base) and candidate != base:
            return PurePosixPath(candidate.relative_to(base).as_posix())
    raise path_not_found()


def open_beneath(root: Path, rel: PurePosixPath, flags: int = os.O_RDONLY) -> int:
    """Open ``rel`` under ``root`` following no link at any step; 404 otherwise."""
    try:
        fd = os.open(real_root(root), _O_DIR)
    except OSError:
        raise path_not_found() from None
    try:
        for part in rel.parts[:-1]:
            try:
                next_fd = os.open(part, _O_DIR, dir_fd=fd)
            except OSError:
                raise path_not_found() from None
            os.close(fd)
            fd = next_fd
        try:
            return os.open(rel.parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
                raise path_not_found() from None
            raise
    finally:
        os.close(fd)


def make_dirs_inside(root: Path, rel_dir: PurePosixPath) -> Path:
    """Create the folders of ``rel_dir`` under ``root`` (each checked as it is made)."""
    current = real_root(root)
    for part in rel_dir.parts:
        current = current / part
        with contextlib.suppress(FileExistsError):
            os.mkdir(current)
        if not stat.S_ISDIR(os.lstat(current).st_mode):
            raise path_not_found()
    return current
