"""Plain-dict codec for the domain's frozen dataclasses (for any document store).

Invariants: ``from_doc(cls, to_doc(x)) == x`` for every value of the model; unknown
keys in a stored document are ignored and missing keys take the field default, so a
document written by an older or newer version still loads; a field whose stored shape
changed is upgraded on read (``_UPGRADES``): an action's outcome stored as one line of
text (``"retry: …"``, ``"error: not found: …"``) loads as its kind and detail.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from enum import Enum
from functools import cache
from typing import Any, TypeVar

from .history import BINS, CLASSES, MAX_FIRSTS, History, sanitize
from .model import ActionRecord, OutcomeKind, PoolState

T = TypeVar("T")
Doc = Mapping[str, Any]

# How an outcome read before it was typed (one line of text) begins, longest first.
_OUTCOME_TEXT = (
    ("error: not found: ", OutcomeKind.NOT_FOUND),
    ("done; then ", OutcomeKind.SUPERSEDED),
    ("skipped: ", OutcomeKind.SKIPPED),
    ("retry: ", OutcomeKind.RETRY),
    ("capacity: ", OutcomeKind.CAPACITY),
    ("error: ", OutcomeKind.ERROR),
)
_OUTCOMES = frozenset(k.value for k in OutcomeKind)


def _action_record(doc: Doc) -> Doc:
    """An ActionRecord whose outcome is the text older versions stored."""
    text = doc.get("outcome")
    if not isinstance(text, str) or text in _OUTCOMES:
        return doc
    for prefix, kind in _OUTCOME_TEXT:
        if text.startswith(prefix):
            return {**doc, "outcome": kind.value, "detail": text[len(prefix) :]}
    return {**doc, "outcome": OutcomeKind.ERROR.value, "detail": text}  # settled, unknown


def _pool_state(doc: Doc) -> Doc:
    """A pool whose history cannot be read loads with none (it is advice, DESIGN.md §4):
    a corrupt, huge, older or newer history never stops the pool's document loading."""
    if "history" not in doc:
        return doc
    raw = doc["history"]
    try:
        if not isinstance(raw, Mapping):
            raise TypeError("history is not a map")
        trimmed = dict(raw)
        for key, most in (("firsts", MAX_FIRSTS), ("classes", CLASSES * len(BINS))):
            value = trimmed.get(key)
            if isinstance(value, (list, tuple)) and len(value) > most:
                trimmed[key] = list(value)[-most:]
            elif value is not None and not isinstance(value, (list, tuple)):
                del trimmed[key]
        history = sanitize(from_doc(History, trimmed))
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError, RecursionError):
        return {k: v for k, v in doc.items() if k != "history"}
    return {**doc, "history": to_doc(history)}


_UPGRADES: dict[type, Callable[[Doc], Doc]] = {
    ActionRecord: _action_record,
    PoolState: _pool_state,
}


def to_doc(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_doc(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_doc(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_doc(v) for v in value]
    return value


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_doc(cls: type[T], doc: Mapping[str, Any]) -> T:
    hints = _hints(cls)  # type: ignore[arg-type]
    upgrade = _UPGRADES.get(cls)
    if upgrade is not None:
        doc = upgrade(doc)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in doc:
            kwargs[f.name] = _decode(hints[f.name], doc[f.name])
    return cls(**kwargs)


def _decode(tp: Any, raw: Any) -> Any:
    if raw is None:
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _decode(inner[0], raw) if len(inner) == 1 else raw
    if origin is tuple:
        return tuple(_decode(args[0], v) for v in raw)
    if origin in (Mapping, dict, typing.Mapping) or tp in (Mapping, dict):
        value_type = args[1] if len(args) == 2 else Any
        return {str(k): _decode(value_type, v) for k, v in raw.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_doc(tp, raw)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(raw)
    if tp is float and isinstance(raw, int):
        return float(raw)
    return raw
