"""Provider-side configuration checks that Terraform core leaves to the provider.

Core already enforces the schema's shape (argument names, types, required arguments,
block names and counts).  Setting a *computed-only* attribute is the one schema rule
it does not check: real providers reject it in ``ValidateResourceConfig`` (SDKv2:
"this field cannot be set"; plugin framework: "Invalid Configuration for Read-Only
Attribute").  This module does the same on the msgpack-encoded config.

Invariants:
- Read-only only: an attribute is flagged when computed, neither optional nor required,
  and its configured value is not null (an unknown value counts as set).
- Walks nested blocks of every nesting mode; never raises on values it cannot walk
  (unknown blocks, dynamic values) but skips them.
"""

from __future__ import annotations

from typing import Any

import msgpack

from .rpc import message

# Schema.NestedBlock.NestingMode
_SINGLE, _LIST, _SET, _MAP, _GROUP = 1, 2, 3, 4, 5


class Unknown:
    """A cty unknown value (msgpack extension type 0 / refined unknown 12)."""


_UNKNOWN = Unknown()


def decode(raw: bytes) -> Any:
    """Decode a cty msgpack DynamicValue payload; unknowns become ``Unknown``."""
    return msgpack.unpackb(
        raw, raw=False, strict_map_key=False, ext_hook=lambda code, data: _UNKNOWN
    )


def _diag(path: list[str | int]) -> Any:
    diag = message("tfplugin6.Diagnostic")()
    diag.severity = 1  # ERROR
    diag.summary = "Invalid Configuration for Read-Only Attribute"
    diag.detail = (
        "Cannot set value for this attribute as the provider has marked it as read-only. "
        f'Remove the configuration line setting the value. (attribute "{path[-1]}")'
    )
    for step in path:
        s = diag.attribute.steps.add()
        if isinstance(step, int):
            s.element_key_int = step
        else:
            s.attribute_name = step
    return diag


def read_only_violations(block: Any, value: Any, path: list[str | int] | None = None) -> list:  # type: ignore[type-arg]
    """Diagnostics for computed-only attributes set in ``value`` (a decoded object)."""
    path = path or []
    if not isinstance(value, dict):
        return []
    out = []
    for attr in block.attributes:
        read_only = attr.computed and not attr.optional and not attr.required
        if read_only and value.get(attr.name) is not None:
            out.append(_diag([*path, attr.name]))
    for nested in block.block_types:
        item = value.get(nested.type_name)
        here = [*path, nested.type_name]
        if nested.nesting in (_SINGLE, _GROUP):
            out += read_only_violations(nested.block, item, here)
        elif nested.nesting == _LIST and isinstance(item, list):
            for i, element in enumerate(item):
                out += read_only_violations(nested.block, element, [*here, i])
        elif nested.nesting == _SET and isinstance(item, list):
            for element in item:  # set elements have no stable index: report the block
                out += read_only_violations(nested.block, element, here)
        elif nested.nesting == _MAP and isinstance(item, dict):
            for element in item.values():
                out += read_only_violations(nested.block, element, here)
    return out
