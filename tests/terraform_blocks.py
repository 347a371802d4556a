"""Terraform files as python-hcl2 reads them (``hcl2.load``), block by block, for the
tests that hold the deployment to its facts (tests/infra).

Every file becomes a dict of blocks (``{"resource": [{'"type"': {'"name"': body}}]}``,
labels kept in their quotes); a quoted string keeps its quotes and any other expression
is its normalized source wrapped in ``${...}``. ``blocks_of`` unwraps the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import hcl2


@dataclass(frozen=True)
class Block:
    kind: str
    labels: tuple[str, ...]
    body: dict[str, Any]
    path: Path


def unquote(text: str) -> str:
    assert len(text) >= 2 and text[0] == text[-1] == '"', f"not a quoted string: {text!r}"
    return text[1:-1]


@cache
def blocks_of(path: Path) -> tuple[Block, ...]:
    """Top-level blocks of one file, in order."""
    with path.open(encoding="utf-8") as file:
        document = hcl2.load(
            file, serialization_options=hcl2.SerializationOptions(with_comments=False)
        )
    blocks = []
    for kind, entries in document.items():
        assert isinstance(entries, list), f"{path.name}: top-level {kind} is not a block"
        for entry in entries:
            labels, body = [], entry
            while "__is_block__" not in body:  # one nesting level per label
                ((label, body),) = body.items()
                labels.append(unquote(label))
            blocks.append(Block(kind, tuple(labels), body, path))
    return tuple(blocks)
