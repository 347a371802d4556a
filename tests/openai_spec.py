"""OpenAI's published OpenAPI document as the oracle of the gateway's own answers.

Invariants:
- The document is the vendored file (tests/gateway/openapi/, its README names the
  repository, path and commit); it is read once per session and never edited.
- ``check(method, path, status, doc)`` validates ``doc`` with JSON Schema 2020-12 (the
  dialect of OpenAPI 3.1) against the schema the document gives for that operation's
  200 answer, found by matching ``path`` to the document's path templates (a literal
  path before a template); an error status against ``components/schemas/ErrorResponse``
  (the document declares no per-operation errors). References resolve inside the
  document, so a schema is never copied out of it.
- Nothing here imports pytest.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC = Path(__file__).parent / "gateway" / "openapi" / "openapi.json"
_URI = "urn:openai-openapi"


@functools.cache
def spec() -> dict[str, Any]:
    return dict(json.loads(SPEC.read_text()))


@functools.cache
def _registry() -> Registry:  # type: ignore[type-arg]
    resource = Resource.from_contents(spec(), default_specification=DRAFT202012)
    return Registry().with_resource(_URI, resource)


def _pointer(*parts: str) -> str:
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def operation(method: str, path: str) -> str:
    """The document's path template that serves ``path`` (without /v1) for ``method``."""
    templates = sorted(spec()["paths"], key=lambda t: (t.count("{"), t))
    for template in templates:
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in spec()["paths"][template]:
            return str(template)
    raise AssertionError(f"OpenAI's document has no {method} {path}")


def schema_pointer(method: str, path: str, status: int) -> str:
    if status >= 400:
        return _pointer("components", "schemas", "ErrorResponse")
    template = operation(method, path)
    answer = spec()["paths"][template][method.lower()]["responses"][str(status)]
    (media,) = answer["content"]
    return _pointer(
        "paths", template, method.lower(), "responses", str(status), "content", media, "schema"
    )


def check(method: str, path: str, status: int, doc: Any) -> None:
    """AssertionError naming every way ``doc`` differs from the document's schema."""
    pointer = schema_pointer(method, path, status)
    validator = jsonschema.Draft202012Validator({"$ref": f"{_URI}#{pointer}"}, registry=_registry())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]
        raise AssertionError(
            f"{method} {path} → {status} differs from OpenAI's {pointer}:\n  " + "\n  ".join(lines)
        )
