"""File types: a small allow-list of signatures of our own, checked on the first bytes.

A type has extensions, a media type and a check of the head of the file: a signature
(magic bytes), a cheap structural check (CSV/JSONL: UTF-8 text whose first line parses;
NPY: its header) or none (ONNX, protocol 0/1 pickles: accepted by extension alone,
unless the bytes carry another known signature). ``detect`` picks the type of a file
among the types a category allows; ``identify`` names the content of any file.
Pickle-based formats are flagged ``untrusted_pickle``: nothing here unpickles anything.
"""

from __future__ import annotations

import ast
import codecs
import csv
import io
import json
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import ApiError

HEAD_BYTES = 65536  # how much of a file the checks see
ANY = "*"
DIRECTORY = "directory"

Check = Callable[[bytes, bool], bool]


@dataclass(frozen=True)
class FileType:
    name: str
    extensions: tuple[str, ...]
    media_type: str
    check: Check | None  # None: no signature (extension alone)
    structural: bool = False  # the check is a structure check, not a magic number
    pickle: bool = False


@dataclass(frozen=True)
class Sniffed:
    """What a file was found to be."""

    format: str
    media_type: str
    checked: str  # "signature" | "structure" | "extension" | "content" | "none"
    untrusted_pickle: bool = False

    def metadata(self) -> dict[str, object]:
        meta: dict[str, object] = {"type_check": self.checked}
        if self.untrusted_pickle:
            meta["untrusted_pickle"] = True
        return meta


# -- checks ------------------------------------------------------------------------------


def _magic(*prefixes: bytes, offset: int = 0) -> Check:
    return lambda head, _complete: any(head.startswith(p, offset) for p in prefixes)


def _safetensors(head: bytes, complete: bool) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= 100 * 1024 * 1024 and head[8:9] == b"{"


def _hdf5(head: bytes, complete: bool) -> bool:
    signature = b"\x89HDF\r\n\x1a\n"
    return any(head.startswith(signature, offset) for offset in (0, 512, 1024, 2048))


def _tar(head: bytes, complete: bool) -> bool:
    return head[257:262] == b"ustar"


def _webp(head: bytes, complete: bool) -> bool:
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


def _pickle2(head: bytes, complete: bool) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


_PICKLE01_FIRST = frozenset(b"(]}c)NIFLSVJKMUXGTdlp")


def _pickle01(head: bytes, complete: bool) -> bool:
    return bool(head) and head[0] in _PICKLE01_FIRST


def _onnx(head: bytes, complete: bool) -> bool:
    if not head:
        return False
    tag = head[0]
    return tag & 0x7 in (0, 2) and 1 <= tag >> 3 <= 20


def _text(head: bytes, complete: bool) -> str | None:
    """The head as text (UTF-8, BOM dropped, a cut multi-byte tail ignored), or None."""
    if b"\x00" in head:
        return None
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        text = decoder.decode(head, final=complete)
    except UnicodeDecodeError:
        return None
    return text.removeprefix("\ufeff")


def _first_line(head: bytes, complete: bool) -> str | None:
    text = _text(head, complete)
    if text is None:
        return None
    for line in text.splitlines(keepends=True):
        if line.strip():
            if not line.endswith(("\n", "\r")) and not complete:
                return None  # the first line goes beyond the head: cannot be checked
            return line.strip()
    return ""


def _csv(head: bytes, complete: bool) -> bool:
    """UTF-8 text whose first record parses (a quoted field may span lines)."""
    text = _text(head, complete)
    if text is None:
        return False
    if not complete:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        if cut < 0:
            return True  # one line longer than the head: text is all that can be said
        text = text[: cut + 1]
    try:
        first = next(csv.reader(io.StringIO(text), strict=True), None)
    except csv.Error as exc:
        return not complete and "end of data" in str(exc)  # a quote open past the head
    return first is not None or complete


def _jsonl(head: bytes, complete: bool) -> bool:
    line = _first_line(head, complete)
    if line is None:
        return _text(head, complete) is not None and not complete
    if not line:
        return complete
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _json(head: bytes, complete: bool) -> bool:
    text = _text(head, complete)
    return text is not None and text.lstrip()[:1] in ("{", "[")


def _ipynb(head: bytes, complete: bool) -> bool:
    text = _text(head, complete)
    return text is not None and text.lstrip()[:1] == "{"


def _utf8(head: bytes, complete: bool) -> bool:
    return _text(head, complete) is not None


def npy_header(head: bytes) -> dict[str, object] | None:
    """The header dict of an ``.npy`` file (parsed as a literal, never evaluated)."""
    if not head.startswith(b"\x93NUMPY") or len(head) < 10:
        return None
    major = head[6]
    if major == 1:
        (length,), start = struct.unpack("<H", head[8:10]), 10
    elif major in (2, 3) and len(head) >= 12:
        (length,), start = struct.unpack("<I", head[8:12]), 12
    else:
        return None
    raw = head[start:start + length]
    if len(raw) < length or length > 65536:
        return None
    try:
        header = ast.literal_eval(raw.decode("latin1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= set(header):
        return None
    return header


def _npy(head: bytes, complete: bool) -> bool:
    return npy_header(head) is not None


ZIP = _magic(b"PK\x03\x04", b"PK\x05\x06")

# -- the allow-list ----------------------------------------------------------------------

TYPES: dict[str, FileType] = {
    t.name: t
    for t in [
        FileType("safetensors", (".safetensors",), "application/vnd.safetensors", _safetensors,
                 structural=True),
        FileType("torch-zip", (".pt", ".pth", ".bin", ".ckpt", ".pt2"), "application/zip", ZIP,
                 pickle=True),
        FileType("pickle", (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".joblib"),
                 "application/x-python-pickle", _pickle2, pickle=True),
        FileType("pickle-legacy", (".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle"),
                 "application/x-python-pickle", None, pickle=True),
        FileType("onnx", (".onnx",), "application/x-onnx", None),
        FileType("gguf", (".gguf",), "application/x-gguf", _magic(b"GGUF")),
        FileType("hdf5", (".h5", ".hdf5", ".hdf"), "application/x-hdf5", _hdf5),
        FileType("keras", (".keras",), "application/zip", ZIP),
        FileType("tflite", (".tflite",), "application/x-tflite", _magic(b"TFL3", offset=4)),
        FileType("csv", (".csv",), "text/csv", _csv, structural=True),
        FileType("tsv", (".tsv",), "text/tab-separated-values", _utf8, structural=True),
        FileType("parquet", (".parquet", ".pq"), "application/vnd.apache.parquet",
                 _magic(b"PAR1")),
        FileType("arrow", (".arrow", ".feather", ".ipc"), "application/vnd.apache.arrow.file",
                 _magic(b"ARROW1", b"FEA1")),
        FileType("arrow-stream", (".arrows",), "application/vnd.apache.arrow.stream",
                 _magic(b"\xff\xff\xff\xff")),
        FileType("npy", (".npy",), "application/x-npy", _npy, structural=True),
        FileType("npz", (".npz",), "application/zip", ZIP),
        FileType("jsonl", (".jsonl", ".ndjson"), "application/jsonl", _jsonl, structural=True),
        FileType("json", (".json",), "application/json", _json, structural=True),
        FileType("png", (".png",), "image/png", _magic(b"\x89PNG\r\n\x1a\n")),
        FileType("jpeg", (".jpg", ".jpeg"), "image/jpeg", _magic(b"\xff\xd8\xff")),
        FileType("gif", (".gif",), "image/gif", _magic(b"GIF87a", b"GIF89a")),
        FileType("webp", (".webp",), "image/webp", _webp),
        FileType("bmp", (".bmp",), "image/bmp", _magic(b"BM")),
        FileType("tiff", (".tif", ".tiff"), "image/tiff", _magic(b"II*\x00", b"MM\x00*")),
        FileType("zip", (".zip",), "application/zip", ZIP),
        FileType("tar", (".tar",), "application/x-tar", _tar),
        FileType("gzip", (".gz", ".tgz", ".tar.gz"), "application/gzip", _magic(b"\x1f\x8b")),
        FileType("bzip2", (".bz2", ".tbz2", ".tar.bz2"), "application/x-bzip2",
                 _magic(b"BZh")),
        FileType("xz", (".xz", ".txz", ".tar.xz"), "application/x-xz",
                 _magic(b"\xfd7zXZ\x00")),
        FileType("zstd", (".zst", ".tar.zst"), "application/zstd", _magic(b"\x28\xb5\x2f\xfd")),
        FileType("7z", (".7z",), "application/x-7z-compressed", _magic(b"7z\xbc\xaf\x27\x1c")),
        FileType("ipynb", (".ipynb",), "application/x-ipynb+json", _ipynb, structural=True),
        FileType("python", (".py",), "text/x-python", _utf8, structural=True),
        FileType("text", (".txt", ".md", ".yaml", ".yml", ".toml", ".cfg", ".log"),
                 "text/plain", _utf8, structural=True),
    ]
}

# content recognisers for files whose extension says nothing (artifacts, found files)
_SIGNATURE_TYPES = [t for t in TYPES.values() if t.check is not None and not t.structural]
_OTHER_SIGNATURES: list[tuple[str, Check]] = [
    ("pdf", _magic(b"%PDF-")),
    ("elf", _magic(b"\x7fELF")),
]

CATEGORY_TYPES: dict[str, tuple[str, ...]] = {
    "models": ("safetensors", "torch-zip", "pickle", "pickle-legacy", "onnx", "gguf", "hdf5",
               "keras", "tflite", DIRECTORY),
    "datasets": ("csv", "tsv", "parquet", "arrow", "arrow-stream", "npy", "npz", "jsonl",
                 "json", "text", "hdf5", "png", "jpeg", "gif", "webp", "bmp", "tiff", "zip",
                 "tar", "gzip", "bzip2", "xz", "zstd", "7z", DIRECTORY),
    "checkpoints": ("safetensors", "torch-zip", "pickle", "pickle-legacy", "npz", "hdf5",
                    "json", DIRECTORY),
    "notebooks": ("ipynb", "python", "text"),
    "artifacts": (ANY,),
}


def known_type_names() -> list[str]:
    return [*TYPES, DIRECTORY, ANY]


def _extension_matches(name: str, allowed: Iterable[str]) -> list[FileType]:
    lower = name.lower()
    found = [TYPES[t] for t in allowed if t in TYPES
             and any(lower.endswith(ext) for ext in TYPES[t].extensions)]
    # signature types first, then structural checks, extension-only types last
    return sorted(found, key=lambda t: (t.check is None, t.structural))


def identify(head: bytes, complete: bool) -> Sniffed:
    """What the content is, whatever the name says."""
    for filetype in _SIGNATURE_TYPES:
        assert filetype.check is not None
        if filetype.check(head, complete):
            return Sniffed(filetype.name, filetype.media_type, "content", filetype.pickle)
    if _safetensors(head, complete):
        return Sniffed("safetensors", TYPES["safetensors"].media_type, "content")
    if _npy(head, complete):
        return Sniffed("npy", TYPES["npy"].media_type, "content")
    for name, check in _OTHER_SIGNATURES:
        if check(head, complete):
            return Sniffed(name, "application/octet-stream", "content")
    if not head:
        return Sniffed("empty", "application/octet-stream", "content")
    if _text(head, complete) is not None:
        return Sniffed("text", "text/plain", "content")
    return Sniffed("binary", "application/octet-stream", "none")


def describe(name: str, head: bytes, complete: bool) -> Sniffed:
    """Best description of a found file (no refusal): extension types checked, else content."""
    for filetype in _extension_matches(name, TYPES):
        if filetype.check is None:
            content = identify(head, complete)
            if content.checked == "content" and content.format not in ("text", "empty"):
                continue
            return Sniffed(filetype.name, filetype.media_type, "extension", filetype.pickle)
        if filetype.check(head, complete):
            checked = "structure" if filetype.structural else "signature"
            return Sniffed(filetype.name, filetype.media_type, checked, filetype.pickle)
    return identify(head, complete)


def detect(name: str, head: bytes, complete: bool, allowed: Iterable[str]) -> Sniffed:
    """The type of ``name`` with this head among ``allowed``; ``415`` when none fits."""
    found = _detect(name, head, complete, tuple(allowed))
    if found.format == "npy" and npy_is_object(head):
        return Sniffed(found.format, found.media_type, found.checked, untrusted_pickle=True)
    return found


def _detect(name: str, head: bytes, complete: bool, allowed: tuple[str, ...]) -> Sniffed:
    candidates = _extension_matches(name, allowed)
    if not candidates:
        if ANY in allowed:
            return describe(name, head, complete)
        raise unsupported_type(f"this kind of file is not allowed here ({_suffix(name)})")
    content = identify(head, complete)
    for filetype in candidates:
        if filetype.check is None:
            if content.checked == "content" and content.format not in ("text", "empty"):
                continue  # the bytes say it is something else (a PNG named .onnx)
            if filetype.name == "pickle-legacy" and not _pickle01(head, complete):
                continue
            if filetype.name == "onnx" and not _onnx(head, complete):
                continue
            return Sniffed(filetype.name, filetype.media_type, "extension", filetype.pickle)
        if filetype.check(head, complete):
            checked = "structure" if filetype.structural else "signature"
            return Sniffed(filetype.name, filetype.media_type, checked, filetype.pickle)
    raise unsupported_type(
        f"the content does not match its extension {_suffix(name)}"
        + (f" (it looks like {content.format})" if content.checked == "content" else "")
    )


def extension_allowed(name: str, allowed: Iterable[str]) -> bool:
    """Whether a name could be accepted at all (checked before any byte is read)."""
    allowed = tuple(allowed)
    return ANY in allowed or bool(_extension_matches(name, allowed))


def npy_is_object(head: bytes) -> bool:
    header = npy_header(head)
    return header is not None and "O" in str(header.get("descr"))


def unsupported_type(message: str) -> ApiError:
    return ApiError(415, "unsupported_type", message)


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else "no extension"
