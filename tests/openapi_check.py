"""Validate responses against the OpenAPI document shipped in the package."""

from __future__ import annotations

import json
import re
from functools import cache, lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from notebench.server.capability import load_capabilities, openapi_document

DOC_URI = "urn:notebench-openapi"
API_MARK = "notebench/api"


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The document the server serves: the core one with every capability's fragment."""
    return json.loads(openapi_document(load_capabilities()))


@lru_cache(maxsize=1)
def _registry() -> Registry:
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    return Registry().with_resource(DOC_URI, resource)


@cache
def _path_patterns() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for template in document()["paths"]:
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        patterns.append((re.compile(regex + "$"), template))
    return patterns


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def api_path(url_path: str) -> str:
    """``/a%40b/notebench/api/hardware?x`` -> ``/hardware``."""
    path = url_path.split("?", 1)[0]
    index = path.index(API_MARK)
    return path[index + len(API_MARK):] or "/"


def validate_response(method: str, url_path: str, status: int, body: Any) -> None:
    """Raise AssertionError when the response is not what the document says."""
    path = api_path(url_path)
    matches = [template for regex, template in _path_patterns() if regex.match(path)]
    assert matches, f"{path} is not in the OpenAPI document"
    template = matches[0]
    operation = document()["paths"][template].get(method.lower())
    assert operation is not None, f"{method} {template} is not in the OpenAPI document"
    responses = operation["responses"]
    key = str(status) if str(status) in responses else "default"
    assert key in responses, f"{method} {template} does not document status {status}"
    response = responses[key]
    pointer = ["paths", template, method.lower(), "responses", key]
    if "$ref" in response:
        pointer = response["$ref"].lstrip("#/").split("/")
        response = document()["components"]["responses"][pointer[-1]]
    content = response.get("content", {})
    if "application/json" not in content:
        return
    ref = f"{DOC_URI}#/" + _pointer(*pointer, "content", "application/json", "schema")
    validator = Draft202012Validator({"$ref": ref}, registry=_registry())
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{method} {path} {status}: " + "; ".join(
        f"{list(e.path)}: {e.message}" for e in errors[:5]
    )
