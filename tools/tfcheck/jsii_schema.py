"""Convert a cdktn provider package (jsii assembly + its generated JS) to a provider schema.

Output is the per-provider object of ``terraform providers schema -json``:
``{"provider": S, "resource_schemas": {type: S}, "data_source_schemas": {...},
"ephemeral_resource_schemas": {...}}`` where ``S = {"version": 0, "block": B}`` and a
block ``B`` has ``attributes`` (``type`` as cty type JSON, ``required``/``optional``/
``computed``) and ``block_types`` (``nesting_mode`` list/set/single, ``min_items``,
``max_items``, ``block``).

How cdktn encodes the provider schema, and so how it is decoded here:

- settable arguments are the properties of the ``<X>Config`` / nested struct interface;
  a property that is not ``optional`` is ``required`` (for blocks: ``min_items = 1``);
- a block property typed directly as a struct (not an array) has ``max_items = 1``;
- read-only (computed) attributes are getters of the resource class / the nested
  block's ``OutputReference`` class with no matching settable property; computed
  object lists are ``XList`` classes whose ``get()`` returns an ``XOutputReference``;
- Terraform names, block-vs-attribute and list/set/map/single come from ``js_meta``.

Invariants:
- Every fact is taken from the package; anything that cannot be decoded raises
  ``SchemaError`` naming the jsii type, instead of producing a guessed schema.
- ``required``/``optional``/``computed`` come from the generator's per-attribute
  comments (``js_meta.Flags``) and are cross-checked against jsii's ``optional``.
- A block type that contains itself (cdktn folds a few deep recursive Google API
  messages into a cycle) is emitted once, with an empty body at the point of recursion
  (``Converter.recursive`` lists them; only cloud_security_compliance_cloud_control in
  provider 8.x).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from .js_meta import ClassInfo, Getter, HclEntry, JsMeta, parse_js

Json = Any
_BASES = {
    "cdktn.TerraformResource": "resource_schemas",
    "cdktn.TerraformDataSource": "data_source_schemas",
    "cdktn.TerraformEphemeralResource": "ephemeral_resource_schemas",
}
_PRIMITIVES = {"string": "string", "number": "number", "boolean": "bool", "any": "dynamic"}
_CDKTN_MAPS = {
    "StringMap": ["map", "string"],
    "NumberMap": ["map", "number"],
    "BooleanMap": ["map", "bool"],
    "AnyMap": ["map", "dynamic"],
}
_GETTER_TYPES: dict[str, Json] = {
    "string": "string",
    "number": "number",
    "bool": "bool",
    "dynamic": "dynamic",
    "list": ["list", "string"],
    "set": ["set", "string"],
    "numberlist": ["list", "number"],
    "numberset": ["set", "number"],
    "map": ["map", "string"],
    "numbermap": ["map", "number"],
    "boolmap": ["map", "bool"],
    "anymap": ["map", "dynamic"],
}
# TerraformProvider meta-argument that cdktn models as a config property.
_PROVIDER_META = frozenset({"alias"})


class SchemaError(ValueError):
    pass


def read_package(tarball: Path) -> tuple[dict[str, Json], JsMeta]:
    """Load the jsii assembly and parse every generated JS module in one tarball pass."""
    meta = JsMeta()
    assembly: dict[str, Json] | None = None
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name
            if name.endswith("/.jsii") or name.endswith(".jsii.gz"):
                handle = tar.extractfile(member)
                assert handle is not None
                raw = handle.read()
                if name.endswith(".gz"):
                    raw = gzip.decompress(raw)
                assembly = json.loads(raw)
                if assembly and assembly.get("schema") == "jsii/file-redirect":
                    raise SchemaError("redirected jsii assemblies are not supported")
            elif name.endswith(".js") and "/lib/" in name:
                handle = tar.extractfile(member)
                assert handle is not None
                parse_js(io.TextIOWrapper(handle, encoding="utf-8").read(), meta)
    if assembly is None:
        raise SchemaError(f"no .jsii assembly in {tarball}")
    return assembly, meta


class Converter:
    def __init__(self, assembly: dict[str, Json], meta: JsMeta) -> None:
        self.types: dict[str, Json] = assembly["types"]
        self.meta = meta
        self._stack: list[str] = []
        self.recursive: set[str] = set()
        self.by_name: dict[str, str] = {}
        for fqn, t in self.types.items():
            if t.get("datatype"):
                if t["name"] in self.by_name:
                    raise SchemaError(f"struct name {t['name']} is not unique")
                self.by_name[t["name"]] = fqn

    # -- helpers -----------------------------------------------------------------
    def _type(self, fqn: str) -> Json:
        try:
            return self.types[fqn]
        except KeyError:
            raise SchemaError(f"jsii type {fqn} not in assembly") from None

    def _class(self, fqn: str) -> ClassInfo:
        info = self.meta.classes.get(fqn)
        if info is None:
            raise SchemaError(f"no generated JS found for class {fqn}")
        return info

    def _props(self, fqn: str) -> list[Json]:
        return [p for p in self._type(fqn).get("properties", []) if not p.get("static")]

    def _sibling(self, fqn: str, js_class: str) -> str:
        return f"{fqn.rsplit('.', 1)[0]}.{js_class}"

    @staticmethod
    def _struct_ref(jtype: Json) -> tuple[str, bool] | None:
        """(struct fqn, is_array) if ``jtype`` is a struct or an array of structs."""
        if "fqn" in jtype:
            return jtype["fqn"], False
        for alt in jtype.get("union", {}).get("types", [jtype]):
            coll = alt.get("collection")
            if coll and coll["kind"] == "array" and "fqn" in coll["elementtype"]:
                return coll["elementtype"]["fqn"], True
        return None

    def _value_type(self, jtype: Json, kind: str, where: str) -> Json:
        """cty type of a settable attribute from its jsii type and HCL-table kind."""
        if "primitive" in jtype:
            if jtype["primitive"] not in _PRIMITIVES:
                raise SchemaError(f"{where}: unsupported primitive {jtype['primitive']}")
            return _PRIMITIVES[jtype["primitive"]]
        if "union" in jtype:
            alts = [t for t in jtype["union"]["types"] if t.get("fqn") != "cdktn.IResolvable"]
            if len(alts) != 1:
                raise SchemaError(f"{where}: ambiguous union {jtype}")
            return self._value_type(alts[0], kind, where)
        if "collection" in jtype:
            coll = jtype["collection"]
            elem = self._value_type(coll["elementtype"], "simple", where)
            if coll["kind"] == "map":
                return ["map", elem]
            return ["set" if kind == "set" else "list", elem]
        raise SchemaError(f"{where}: unsupported attribute type {jtype}")

    def _getter_type(self, getter: Getter, owner: str) -> Json:
        if getter.how != "ref":
            if getter.how not in _GETTER_TYPES:
                raise SchemaError(f"{owner}.{getter.tf_name}: unknown getter {getter.how}")
            return _GETTER_TYPES[getter.how]
        cls = getter.ref_class
        if cls in _CDKTN_MAPS:
            return _CDKTN_MAPS[cls]
        if cls.endswith("MapList") and cls[: -len("List")] in _CDKTN_MAPS:
            inner = _CDKTN_MAPS[cls[: -len("List")]]
            return ["set" if getter.wraps_set else "list", inner]
        fqn = self._sibling(owner, cls)
        if cls.endswith("OutputReference"):
            return self._object_type(fqn)
        if cls.endswith("List") or cls.endswith("Map"):
            method = next(
                (m for m in self._type(fqn).get("methods", []) if m["name"] == "get"), None
            )
            if method is None:
                raise SchemaError(f"{fqn}: collection class without get()")
            elem = self._object_type(method["returns"]["type"]["fqn"])
            if cls.endswith("Map"):
                return ["map", elem]
            return ["set" if getter.wraps_set else "list", elem]
        raise SchemaError(f"{owner}.{getter.tf_name}: unsupported reference class {cls}")

    def _object_type(self, ref_fqn: str) -> Json:
        info = self._class(ref_fqn)
        attrs = {}
        for prop in self._props(ref_fqn):
            getter = info.getters.get(prop["name"])
            if getter is not None:
                attrs[getter.tf_name] = self._getter_type(getter, ref_fqn)
        return ["object", attrs]

    # -- blocks ------------------------------------------------------------------
    def block(
        self,
        struct_fqn: str,
        table: dict[str, HclEntry],
        reader: str | None,
        fields: dict[str, str] | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> Json:
        """Block schema: settable props of ``struct_fqn`` + computed getters of ``reader``.

        ``fields`` maps a config prop to the class field keying ``table`` (top level only,
        where cdktn renames clashing props, e.g. ``buildAttribute`` -> ``_build``).
        """
        info = self._class(reader) if reader is not None else None
        flags = info.flags if info is not None else {}
        attributes: dict[str, Json] = {}
        block_types: dict[str, Json] = {}
        for prop in self._props(struct_fqn):
            camel = prop["name"]
            entry = table.get((fields or {}).get(camel, camel))
            if entry is None:
                raise SchemaError(f"{struct_fqn}.{camel}: no Terraform name in generated JS")
            if entry.tf_name in skip:
                continue
            required = not prop.get("optional", False)
            flag = flags.get(entry.tf_name)
            if flag is not None and flag.required != required:
                raise SchemaError(f"{struct_fqn}.{camel}: required flag disagrees with jsii")
            if entry.is_block:
                block_types[entry.tf_name] = self._nested(struct_fqn, prop, entry, required)
                continue
            where = f"{struct_fqn}.{camel}"
            attr = {"type": self._value_type(prop["type"], entry.kind, where)}
            attr["required" if required else "optional"] = True
            if flag is not None and flag.computed and not required:
                attr["computed"] = True
            attributes[entry.tf_name] = attr
        if info is not None and reader is not None:
            for prop in self._props(reader):
                getter = info.getters.get(prop["name"])
                if getter is None or getter.tf_name in skip:
                    continue
                if getter.tf_name in attributes or getter.tf_name in block_types:
                    continue
                flag = flags.get(getter.tf_name)
                if flag is not None and (flag.optional or flag.required):
                    raise SchemaError(f"{reader}.{prop['name']}: settable but not in config")
                attributes[getter.tf_name] = {
                    "type": self._getter_type(getter, reader),
                    "computed": True,
                }
        out: Json = {}
        if attributes:
            out["attributes"] = dict(sorted(attributes.items()))
        if block_types:
            out["block_types"] = dict(sorted(block_types.items()))
        return out

    def _nested(self, parent: str, prop: Json, entry: HclEntry, required: bool) -> Json:
        ref = self._struct_ref(prop["type"])
        if ref is None:
            raise SchemaError(f"{parent}.{prop['name']}: block without struct type")
        fqn, is_array = ref
        if fqn in self._stack:
            self.recursive.add(fqn)
            return {"nesting_mode": entry.kind if entry.kind != "struct" else "single", "block": {}}
        name = self._type(fqn)["name"]
        table = self.meta.structs.get(name)
        if table is None:
            raise SchemaError(f"{fqn}: no generated ToHclTerraform function")
        reader = f"{fqn}OutputReference"
        self._stack.append(fqn)
        try:
            body = self.block(fqn, table, reader if reader in self.meta.classes else None)
        finally:
            self._stack.pop()
        if entry.kind == "struct":
            return {"nesting_mode": "single", "block": body}
        if entry.kind not in ("list", "set"):
            raise SchemaError(f"{parent}.{prop['name']}: unsupported block kind {entry.kind}")
        nested: Json = {"nesting_mode": entry.kind, "block": body}
        if required:
            nested["min_items"] = 1
        if not is_array:
            nested["max_items"] = 1
        return nested

    def _config_fqn(self, class_fqn: str) -> str:
        for param in self._type(class_fqn).get("initializer", {}).get("parameters", []):
            if param["name"] == "config":
                return str(param["type"]["fqn"])
        raise SchemaError(f"{class_fqn}: initializer has no config parameter")

    def top_level(self, class_fqn: str, skip: frozenset[str] = frozenset()) -> Json:
        info = self._class(class_fqn)
        config = self._config_fqn(class_fqn)
        block = self.block(config, info.hcl, class_fqn, info.config_fields, skip)
        return {"version": 0, "block": block}

    def convert(self) -> Json:
        out: Json = {
            "provider": None,
            "resource_schemas": {},
            "data_source_schemas": {},
            "ephemeral_resource_schemas": {},
        }
        for fqn, info in sorted(self.meta.classes.items()):
            if info.base == "cdktn.TerraformProvider":
                if out["provider"] is not None:
                    raise SchemaError("more than one provider class")
                out["provider"] = self.top_level(fqn, skip=_PROVIDER_META)
            elif info.base in _BASES:
                if not info.tf_type:
                    raise SchemaError(f"{fqn}: no tfResourceType")
                out[_BASES[info.base]][info.tf_type] = self.top_level(fqn)
        if out["provider"] is None:
            raise SchemaError("no provider class found")
        return out


def convert_package(tarball: Path) -> Json:
    assembly, meta = read_package(tarball)
    return Converter(assembly, meta).convert()
