"""Known secret values kept out of what jobs write and what the server serves.

The server never gives a job its own token, but a job may still print a secret it found
elsewhere. ``scrubber`` knows the values (the server's token, registered at start; the
values of ``SECRET_ENV_NAMES`` in the server's environment; whatever else the server
registers with ``add``) and replaces each with ``[secret]``: in job output as the tailer
ingests it, in a job's text files when it ends, and in logs and files as they are served.

Values shorter than ``MIN_LENGTH`` are not scrubbed (they would mangle ordinary text).
File methods are blocking: call them off the event loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

#: environment variables whose values are credentials: never passed to a job, scrubbed
SECRET_ENV_NAMES = ("NOTEBENCH_SERVER_TOKEN", "JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN",
                    "JUPYTER_TOKEN")
REPLACEMENT = "[secret]"
MIN_LENGTH = 8
CHUNK = 1 << 20  # bytes of a file scrubbed at once
_CLEAN_CACHE = 4096  # files remembered as clean (unchanged since their last scan)


def without_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``environ`` without the credential variables (``SECRET_ENV_NAMES``)."""
    return {k: v for k, v in environ.items() if k not in SECRET_ENV_NAMES}


class _Patterns:
    """The compiled forms of one set of secret values."""

    def __init__(self, values: frozenset[str]) -> None:
        forms: set[str] = set()
        for value in values:
            forms.add(value)
            # as it appears inside a JSON string (a notebook, a JSON line)
            forms.add(json.dumps(value)[1:-1])
            forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
        ordered = sorted(forms, key=len, reverse=True)  # the longest form wins at a position
        self.key = values
        self.text_needles = tuple(ordered)
        self.byte_needles = tuple(f.encode() for f in ordered)
        self.longest = max((len(b) for b in self.byte_needles), default=0)
        self.text = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self.bytes = (re.compile(b"|".join(map(re.escape, self.byte_needles)))
                      if ordered else None)


class SecretScrubber:
    """Replaces known secret values with ``[secret]`` in text, bytes and files."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._patterns = _Patterns(frozenset())
        self._clean: dict[str, tuple[int, int, frozenset[str]]] = {}

    def add(self, value: str | None) -> None:
        """Know ``value`` as a secret from now on (empty and short values are ignored)."""
        if value and len(value) >= MIN_LENGTH:
            with self._lock:
                self._values.add(value)

    def discard(self, value: str | None) -> None:
        with self._lock:
            self._values.discard(value or "")

    def values(self) -> frozenset[str]:
        """Every value scrubbed now: the added ones and the secret environment variables'."""
        from_env = (self._environ.get(name) for name in SECRET_ENV_NAMES)
        with self._lock:
            found = set(self._values)
        found.update(v for v in from_env if v and len(v) >= MIN_LENGTH)
        return frozenset(found)

    def _current(self) -> _Patterns:
        values = self.values()
        patterns = self._patterns
        if patterns.key != values:
            patterns = self._patterns = _Patterns(values)
        return patterns

    # -- in memory --------------------------------------------------------------------------

    def scrub_text(self, text: str) -> str:
        patterns = self._current()
        if patterns.text is None or not any(n in text for n in patterns.text_needles):
            return text
        return patterns.text.sub(REPLACEMENT, text)

    def scrub_bytes(self, data: bytes) -> bytes:
        patterns = self._current()
        if patterns.bytes is None or not any(n in data for n in patterns.byte_needles):
            return data
        return patterns.bytes.sub(REPLACEMENT.encode(), data)

    def scrub_lines(self, lines: Iterable[bytes]) -> list[bytes]:
        return [self.scrub_bytes(line) for line in lines]

    # -- files (blocking) -------------------------------------------------------------------

    def scrub_file(self, path: Path, dest: Path | None = None) -> bool:
        """Scrub ``path``; True when it held a secret.

        Without ``dest`` the file is replaced atomically by its scrubbed version (only
        when it held a secret); with ``dest`` the scrubbed version is written there
        (atomically, only when it held a secret) and ``path`` is left alone. Read in
        chunks: a file of any size is never held whole.
        """
        patterns = self._current()
        if patterns.bytes is None:
            return False
        try:
            stat = path.stat()
        except OSError:
            return False
        key = str(path)
        if self._clean.get(key) == (stat.st_size, stat.st_mtime_ns, patterns.key):
            return False  # scanned since it last changed, with the same secrets
        target = dest if dest is not None else path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.scrub-{os.getpid()}-{secrets.token_hex(3)}")
        found = False
        try:
            with path.open("rb") as source, tmp.open("wb") as out:
                carry = b""
                while True:
                    chunk = source.read(CHUNK)
                    buffer = carry + chunk
                    if not chunk:
                        done, carry = buffer, b""
                    else:
                        done, carry = _split_safe(buffer, patterns)
                    if any(n in done for n in patterns.byte_needles):
                        found = True
                        done = patterns.bytes.sub(REPLACEMENT.encode(), done)
                    out.write(done)
                    if not chunk:
                        break
                if found:
                    out.flush()
                    os.fsync(out.fileno())
            if not found:
                tmp.unlink()
                self._remember_clean(key, stat.st_size, stat.st_mtime_ns, patterns.key)
                return False
            with contextlib.suppress(OSError):
                shutil.copymode(path, tmp)
            os.replace(tmp, target)
            return True
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    def _remember_clean(self, key: str, size: int, mtime_ns: int,
                        values: frozenset[str]) -> None:
        if len(self._clean) >= _CLEAN_CACHE:
            self._clean.clear()
        self._clean[key] = (size, mtime_ns, values)


def _split_safe(buffer: bytes, patterns: _Patterns) -> tuple[bytes, bytes]:
    """(the part of ``buffer`` that can be scrubbed now, the tail to carry over).

    A match starting before ``len - longest + 1`` lies wholly in the buffer; the rest is
    carried, unless a match that starts in the safe part reaches into it.
    """
    safe = len(buffer) - patterns.longest + 1
    if safe <= 0:
        return b"", buffer
    cut = safe
    if patterns.bytes is None or not any(n in buffer for n in patterns.byte_needles):
        return buffer[:cut], buffer[cut:]
    for match in patterns.bytes.finditer(buffer, 0, len(buffer)):
        if match.start() >= safe:
            break
        cut = max(cut, match.end())
    return buffer[:cut], buffer[cut:]


#: the server's one scrubber
scrubber = SecretScrubber()
