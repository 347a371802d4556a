"""Encode a ``providers schema -json``-style provider schema as a tfplugin6 response.

Invariants:
- Attribute types are cty type JSON, compact, exactly as Terraform core expects in
  ``Schema.Attribute.type``; nested blocks keep nesting mode and min/max items.
- Every ``Schema.block`` and ``NestedBlock.block`` is present on the wire, even empty:
  Terraform core dereferences them unconditionally.
- Output is deterministic (sorted names, deterministic serialization), so the cached
  bytes are stable for a given schema.
"""

from __future__ import annotations

import json
from typing import Any

from .rpc import message

_NESTING = {"single": 1, "list": 2, "set": 3, "map": 4, "group": 5}


def _block(pb: Any, block: dict[str, Any]) -> None:
    for name, attr in sorted(block.get("attributes", {}).items()):
        a = pb.attributes.add()
        a.name = name
        a.type = json.dumps(attr["type"], separators=(",", ":")).encode()
        a.required = bool(attr.get("required"))
        a.optional = bool(attr.get("optional"))
        a.computed = bool(attr.get("computed"))
        a.sensitive = bool(attr.get("sensitive"))
    for name, nested in sorted(block.get("block_types", {}).items()):
        b = pb.block_types.add()
        b.type_name = name
        b.nesting = _NESTING[nested["nesting_mode"]]
        b.min_items = int(nested.get("min_items", 0))
        b.max_items = int(nested.get("max_items", 0))
        b.block.SetInParent()  # Terraform dereferences it even when empty
        _block(b.block, nested.get("block", {}))


def _schema(pb: Any, schema: dict[str, Any]) -> None:
    pb.version = int(schema.get("version", 0))
    pb.block.SetInParent()
    _block(pb.block, schema.get("block", {}))


def encode(provider_schema: dict[str, Any]) -> bytes:
    """Serialized ``tfplugin6.GetProviderSchema.Response`` for one provider."""
    resp = message("tfplugin6.GetProviderSchema.Response")()
    _schema(resp.provider, provider_schema["provider"])
    for field in ("resource_schemas", "data_source_schemas", "ephemeral_resource_schemas"):
        target = getattr(resp, field)
        for name, schema in sorted(provider_schema.get(field, {}).items()):
            _schema(target[name], schema)
    return bytes(resp.SerializeToString(deterministic=True))
