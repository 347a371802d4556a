"""Build-directory cache of converted provider schemas.

``ensure(provider)`` returns the paths of ``schema-<provider>-<pkgversion>-<hash>.json``
(readable, ``providers schema -json`` style) and the matching ``.pb`` (serialized
``GetProviderSchema.Response`` that the plugin server returns verbatim), converting the
cdktn package's jsii tarball when they are missing.

Invariants:
- The cdktn package is located with ``importlib`` but never imported (importing it would
  start the jsii node runtime); only its bundled ``*.jsii.tgz`` is read.
- The cache key covers the package version and the converter's own source, so a new
  package or converter change regenerates (and removes the outdated files); concurrent
  callers serialise on a lock file and publish atomically.
- ``google-beta`` uses ``cdktn-provider-google-beta`` when installed, otherwise the GA
  schema (beta-only arguments are then reported as unsupported, never silently passed).
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .paths import PACKAGE_DIR, atomic_write, build_dir, source_hash

PACKAGES = {
    "google": ("cdktn_provider_google", "cdktn-provider-google"),
    "google-beta": ("cdktn_provider_google_beta", "cdktn-provider-google-beta"),
}
_CONVERTER_SOURCES = ("jsii_schema.py", "js_meta.py", "schema_proto.py", "proto/tfplugin6.proto")


@dataclass(frozen=True)
class CachedSchema:
    provider: str  # provider type served, e.g. "google-beta"
    source: str  # distribution the schema came from
    json_path: Path
    pb_path: Path


def _package(provider: str) -> tuple[str, str]:
    if provider not in PACKAGES:
        raise KeyError(f"no schema source for provider {provider!r}")
    module, dist = PACKAGES[provider]
    if importlib.util.find_spec(module) is None and provider == "google-beta":
        module, dist = PACKAGES["google"]
    return module, dist


def tarball(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{module} is not installed (pip install -e '.[dev]')")
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    found = sorted((pkg_dir / "_jsii").glob("*.jsii.tgz"))
    if len(found) != 1:
        raise RuntimeError(f"expected one jsii tarball in {pkg_dir / '_jsii'}, found {found}")
    return found[0]


def ensure(provider: str = "google", log=sys.stderr) -> CachedSchema:  # type: ignore[no-untyped-def]
    module, dist = _package(provider)
    version = importlib.metadata.version(dist)
    key = source_hash(*(PACKAGE_DIR / name for name in _CONVERTER_SOURCES))
    stem = f"schema-{dist.removeprefix('cdktn-provider-')}-{version}-{key}"
    out = build_dir()
    cached = CachedSchema(provider, f"{dist}=={version}", out / f"{stem}.json", out / f"{stem}.pb")
    if cached.json_path.exists() and cached.pb_path.exists():
        return cached
    with open(out / "schema.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cached.json_path.exists() and cached.pb_path.exists():
            return cached
        from .jsii_schema import convert_package
        from .schema_proto import encode

        started = time.monotonic()
        schema = convert_package(tarball(module))
        atomic_write(cached.json_path, json.dumps(schema, sort_keys=True).encode())
        atomic_write(cached.pb_path, encode(schema))
        for stale in out.glob(f"schema-{dist.removeprefix('cdktn-provider-')}-*"):
            if stale.name not in (cached.json_path.name, cached.pb_path.name):
                stale.unlink(missing_ok=True)
        print(
            f"tfcheck: converted {dist} {version} schema in "
            f"{time.monotonic() - started:.1f}s -> {cached.json_path}",
            file=log,
        )
    return cached
