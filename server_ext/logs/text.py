"""User text inside a log line: control characters escaped, so it cannot forge a line."""

from __future__ import annotations

import re

#: C0 and C1 controls, DEL and the Unicode line and paragraph separators
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(value: object) -> str:
    """``value`` as one line of text: ``"a\\nb"`` -> ``"a\\\\nb"`` (as Python escapes it)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"),
                        str(value))
