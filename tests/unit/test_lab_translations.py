"""The Lab extension's Arabic strings: complete, current, and with their placeholders."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "server_ext" / "locale" / "ar_SA" / "LC_MESSAGES" / "notebench.json"
# trans.__('text', ...) and trans._n('one', 'many', n): the literal ids in the sources
CALL = re.compile(r"""trans\.(?:__|_n)\(\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")""")
PLACEHOLDER = re.compile(r"%\d")


def source_ids() -> set[str]:
    ids: set[str] = set()
    for path in (ROOT / "labext" / "src").rglob("*.ts"):
        for single, double in CALL.findall(path.read_text()):
            ids.add(single.replace("\\'", "'") if single else double.replace('\\"', '"'))
    return ids


def state_names() -> set[str]:
    """Job and alert states: shown through ``trans.__(state)``."""
    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            state = node.get("state")
            if isinstance(state, dict) and isinstance(state.get("enum"), list):
                yield from state["enum"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    names: set[str] = set()
    for path in (ROOT / "server_ext").rglob("openapi.json"):
        names.update(walk(json.loads(path.read_text())))
    return names


def catalog() -> dict[str, Any]:
    return json.loads(CATALOG.read_text(encoding="utf-8"))


def test_the_catalog_names_its_domain_and_arabic_plural_forms():
    meta = catalog()[""]
    assert meta["domain"] == "notebench"
    # Lab's Gettext files messages under this name and looks them up as "ar-SA"
    assert meta["language"] == "ar-SA"
    assert meta["plural_forms"].startswith("nplurals=6;")


def test_every_string_of_the_extension_is_translated_and_none_is_stale():
    messages = {k for k in catalog() if k}
    used = source_ids()
    assert len(used) > 80  # the pattern still finds the extension's strings
    states = state_names()
    assert {"running", "succeeded", "firing"} <= states
    assert sorted(used - messages) == [], "strings without an Arabic translation"
    assert sorted(messages - used - states) == [], "translations of strings no longer used"


def test_translations_keep_their_placeholders():
    for message, forms in catalog().items():
        if not message:
            continue
        assert isinstance(forms, list) and forms and all(f.strip() for f in forms), message
        wanted = sorted(set(PLACEHOLDER.findall(message)))
        for form in forms:
            assert sorted(set(PLACEHOLDER.findall(form))) == wanted, (message, form)
