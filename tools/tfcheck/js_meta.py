"""Terraform-side facts read from the compiled JavaScript in a cdktn provider package.

The jsii assembly describes the TypeScript API (camelCase names, TS types, optional
flags) but not everything Terraform needs.  The generated JavaScript, which ships in
the same jsii tarball, carries the rest:

- ``function fooToHclTerraform(struct)`` and ``synthesizeHclAttributes()`` tables map
  each settable camelCase property to its Terraform name, whether it is a block, and
  its collection kind (``simple``/``list``/``set``/``map``/``struct``);
- class getters map read-only properties to Terraform names and tell list from set
  (``cdktn.Fn.tolist(...)`` or a ``new XList(this, "name", true)`` wrapper).

Invariants:
- Parsing is purely lexical over the generator's fixed output shape; a construct that
  does not match is left out, and ``jsii_schema`` treats any missing fact as an error.
- Struct tables are keyed by struct *name* (jsii type names are unique in the package;
  the converter checks that), classes by their jsii fqn from the RTTI symbol.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HclEntry:
    """One row of a generated HCL table: how a settable property reaches Terraform."""

    tf_name: str
    is_block: bool
    kind: str  # simple | list | set | map | struct
    storage: str  # storageClassType, e.g. "string", "stringList", "FooBarList"


@dataclass(frozen=True)
class Getter:
    """A class getter that reads a Terraform attribute."""

    tf_name: str
    how: str  # string|number|bool|list|set|numberlist|numberset|map... or "ref"
    ref_class: str = ""  # for how == "ref": JS class name instantiated for it
    wraps_set: bool = False


@dataclass(frozen=True)
class Flags:
    """The generator's ``// name - computed: .., optional: .., required: ..`` comment."""

    computed: bool
    optional: bool
    required: bool


@dataclass
class ClassInfo:
    fqn: str
    base: str
    tf_type: str = ""  # static tfResourceType, for resources/data sources/providers
    hcl: dict[str, HclEntry] = field(default_factory=dict)  # backing field -> entry
    config_fields: dict[str, str] = field(default_factory=dict)  # config prop -> field
    getters: dict[str, Getter] = field(default_factory=dict)  # camel -> getter
    flags: dict[str, Flags] = field(default_factory=dict)  # tf name -> flags


@dataclass
class JsMeta:
    structs: dict[str, dict[str, HclEntry]] = field(default_factory=dict)  # Name -> table
    classes: dict[str, ClassInfo] = field(default_factory=dict)  # fqn -> info


# Top-level definitions start at column 0 and end at the next line that is just "}".
# (two patterns with literal prefixes: far faster to scan than one alternation)
_CLASS = re.compile(r"\nclass (\w+) extends ([\w.]+) \{\n")
_FUNC = re.compile(r"\nfunction (\w+)ToHclTerraform\(struct\) \{\n")
_ENTRY = re.compile(
    r"\n\s+(\w+): \{\n\s+value: (.*?),\n\s+isBlock: (true|false),\n"
    r'\s+type: "(\w+)",\n\s+storageClassType: "(\w+)",\n\s+\}',
    re.S,
)
_PROP_REF = re.compile(r"(?:struct\??\.|this\._)(\w+)")
_RTTI = re.compile(r'static \[JSII_RTTI_SYMBOL_1\] = \{ fqn: "([^"]+)"')
_TF_TYPE = re.compile(r'static tfResourceType = "([^"]+)";')
_GETTER = re.compile(r"\n    get (\w+)\(\) \{\n\s+return (.*?);\n\s+\}")
_FIELD_NEW = re.compile(r'\n    _(\w+) = new ([\w.]+)\(this, "([^"]+)"(?:, (true|false))?\);')
_ATTR_CALL = re.compile(
    r"^(cdktn\.Fn\.tolist\()?this\.get(String|Number|Boolean|List|NumberList|StringMap|"
    r"NumberMap|BooleanMap|AnyMap)Attribute\('([^']+)'\)\)?$"
)
_FLAGS = re.compile(
    r"\n    // (\w+) - computed: (true|false), optional: (true|false), required: (true|false)\n"
)
_CONFIG_FIELD = re.compile(r"\n        this\._(\w+)(?:\.internalValue)? = config\.(\w+);")
_INTERP = re.compile(r"^this\.interpolationForAttribute\('([^']+)'\)$")

_ATTR_KIND = {
    "String": "string",
    "Number": "number",
    "Boolean": "bool",
    "List": "list",
    "NumberList": "numberlist",
    "StringMap": "map",
    "NumberMap": "numbermap",
    "BooleanMap": "boolmap",
    "AnyMap": "anymap",
}


def _hcl_table(body: str) -> dict[str, HclEntry]:
    table: dict[str, HclEntry] = {}
    for m in _ENTRY.finditer(body):
        refs = _PROP_REF.findall(m.group(2))
        if not refs:
            continue
        table[refs[-1]] = HclEntry(m.group(1), m.group(3) == "true", m.group(4), m.group(5))
    return table


def _getters(body: str) -> dict[str, Getter]:
    fields = {m.group(1): m for m in _FIELD_NEW.finditer(body)}
    out: dict[str, Getter] = {}
    for m in _GETTER.finditer(body):
        camel, expr = m.group(1), m.group(2).strip()
        call = _ATTR_CALL.match(expr)
        if call:
            how = _ATTR_KIND[call.group(2)]
            if call.group(1):
                how = {"list": "set", "numberlist": "numberset"}.get(how, how + "-tolist")
            out[camel] = Getter(call.group(3), how)
            continue
        interp = _INTERP.match(expr)
        if interp:
            out[camel] = Getter(interp.group(1), "dynamic")
            continue
        if expr.startswith("this._") and expr[6:].isidentifier():
            new = fields.get(expr[6:])
            if new is not None:
                cls = new.group(2).rsplit(".", 1)[-1]
                out[camel] = Getter(new.group(3), "ref", cls, new.group(4) == "true")
    return out


def _body(text: str, start: int) -> str:
    end = text.find("\n}", start)
    return text[start : end if end >= 0 else len(text)]


def parse_js(text: str, meta: JsMeta) -> None:
    """Add the structs and classes defined in one generated JS module to ``meta``."""
    for m in _FUNC.finditer(text):
        name = m.group(1)
        meta.structs[name[0].upper() + name[1:]] = _hcl_table(_body(text, m.end()))
    for m in _CLASS.finditer(text):
        body = _body(text, m.end())
        rtti = _RTTI.search(body)
        if rtti is None:
            continue
        info = ClassInfo(fqn=rtti.group(1), base=m.group(2))
        tf_type = _TF_TYPE.search(body)
        if tf_type:
            info.tf_type = tf_type.group(1)
        synth = body.find("synthesizeHclAttributes()")
        if synth >= 0:
            info.hcl = _hcl_table(body[synth:])
        info.getters = _getters(body)
        info.config_fields = {m.group(2): m.group(1) for m in _CONFIG_FIELD.finditer(body)}
        info.flags = {
            m.group(1): Flags(*(m.group(i) == "true" for i in (2, 3, 4)))
            for m in _FLAGS.finditer(body)
        }
        meta.classes[info.fqn] = info
