"""``Content-Disposition`` of every download: RFC 6266, the exact name per RFC 5987."""

from __future__ import annotations

import urllib.parse


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback and the exact UTF-8 name (``filename*``).

    The header stays printable ASCII whatever the name holds (quotes, backslashes,
    control characters, any script), so it never fails to encode.
    """
    fallback = "".join(
        c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in name
    ) or "download"
    exact = name.encode("utf-8", "replace")  # a file name undecodable as UTF-8 holds '?'
    return (f'attachment; filename="{fallback}"; '
            f"filename*=UTF-8''{urllib.parse.quote(exact, safe='')}")
