"""Checks of the free-form fields of an asset: tags and metadata."""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import bad_request

#: metadata keys notebench sets itself (a client cannot change them)
READ_ONLY_KEYS = frozenset({"type_check", "untrusted_pickle", "files", "hashing"})
MAX_TAGS = 64
MAX_TAG_CHARS = 64
MAX_METADATA_BYTES = 64 * 1024


def check_tags(tags: Any) -> list[str]:
    """Tags: a list of short printable strings, stripped, duplicates dropped; else 400."""
    if tags is None:
        return []
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise bad_request(f"tags must be a list of at most {MAX_TAGS} strings")
    clean: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or len(tag) > MAX_TAG_CHARS or any(
                ord(c) < 32 or ord(c) == 127 for c in tag):
            raise bad_request(f"a tag is a non-empty string of at most {MAX_TAG_CHARS} "
                              "printable characters")
        if tag.strip() not in clean:
            clean.append(tag.strip())
    return clean


def check_metadata(metadata: Any) -> dict[str, Any]:
    """Metadata: a JSON object of at most 64 KiB without notebench's own keys; else 400."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise bad_request("metadata must be an object")
    if READ_ONLY_KEYS & set(metadata):
        raise bad_request(f"these metadata keys are set by notebench: "
                          f"{sorted(READ_ONLY_KEYS & set(metadata))}", "read_only_key")
    if len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
        raise bad_request("metadata is too large")
    return metadata
