"""What every ``yoyoctl`` command gets (``Ctx``) and how commands are registered.

Invariants: the configuration is the operator's (bootstrap.operator_config: on the local
backend, the running stack's); the store, publisher and scheduler are built on first use,
by bootstrap; output is JSON with ``--json``, else text, then the next command to run.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import parse_duration
from ..errors import ConfigError, YoyoError

if TYPE_CHECKING:
    from ..config import Config
    from ..laptop import LocalOperator as Operator
    from ..ports import Publisher, Scheduler, Store


class CliError(YoyoError):
    """A failure worth one line to the operator."""


class Ctx:
    """The configuration, the adapters (built on demand) and the output of one command."""

    def __init__(self, args: argparse.Namespace) -> None:
        from .. import bootstrap

        self.args = args
        self.json = bool(getattr(args, "json", False))
        self.config: Config = bootstrap.operator_config(getattr(args, "find_stack", True))
        self.local: Operator | None = bootstrap.local_operator(self.config)
        self._store: Store | None = None
        self._publisher: Publisher | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            from ..bootstrap import build_store

            self._store = build_store(self.config)
        return self._store

    @property
    def publisher(self) -> Publisher:
        if self._publisher is None:
            from ..bootstrap import build_publisher

            self._publisher = build_publisher(self.config)
        return self._publisher

    def scheduler(self) -> Scheduler:
        from ..bootstrap import build_scheduler

        return build_scheduler(self.config, self.publisher)

    def local_stack(self, why_not: str) -> Operator:
        """The local stack's operator, or ``why_not`` as the error (on Google Cloud)."""
        if self.local is None:
            raise CliError(why_not)
        return self.local

    def pool(self) -> str:
        pool = getattr(self.args, "pool", None)
        if pool:
            self.config.policy(pool)  # ConfigError if unknown
            return str(pool)
        if len(self.config.pools) == 1:
            return next(iter(self.config.pools))
        raise CliError(f"several pools are configured ({sorted(self.config.pools)}): pass --pool")

    def publish(self, suffix: str, doc: dict[str, Any], **attributes: str) -> str:
        data = json.dumps(doc).encode()
        return str(self.publisher.publish(self.config.topic(suffix), data, **attributes))

    def refuse_under_kill(self, what: str) -> None:
        """One clear line instead of a request the control plane will deny."""
        from ..domain.killswitch import describe

        kill = self.store.get_kill()
        if kill.engaged:
            raise CliError(
                f"the kill switch is engaged, so {what} ({describe(kill)}); "
                "lift it with: yoyoctl unkill --yes"
            )

    def out(self, doc: Any, text: str, next_command: str | None = None) -> None:
        if self.json:
            if next_command and isinstance(doc, dict):
                doc = {**doc, "next": next_command}
            print(json.dumps(doc, indent=2, default=str))
            return
        if text:
            print(text)
        if next_command:
            print(f"\nnext: {next_command}")

    def confirm(self, question: str) -> None:
        if getattr(self.args, "yes", False):
            return
        if not sys.stdin.isatty():
            raise CliError(f"{question} — refusing without confirmation: add --yes")
        answer = input(f"{question} [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise CliError("cancelled")


def by() -> str:
    """Who is asking: ``user@yoyoctl``."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "operator"
    return f"{user}@yoyoctl"[:100]


def duration_arg(value: str) -> float:
    try:
        return parse_duration(value, "--for")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


Command = Callable[[Ctx], int]


class Commands:
    """A level of yoyoctl's subcommands; every command takes the shared flags."""

    def __init__(
        self, sub: Any, common: argparse.ArgumentParser, pool: argparse.ArgumentParser
    ) -> None:
        self.sub = sub
        self.common = common
        self.pool_flag = pool

    def add(self, name: str, fn: Command, help: str, pool: bool = False) -> argparse.ArgumentParser:
        """A command; with ``pool``, it takes ``--pool``."""
        parents = [self.common, self.pool_flag] if pool else [self.common]
        parser: argparse.ArgumentParser = self.sub.add_parser(name, help=help, parents=parents)
        parser.set_defaults(fn=fn)
        return parser

    def group(self, name: str, help: str) -> Commands:
        """A command group (``yoyoctl NAME COMMAND``)."""
        parser = self.sub.add_parser(name, help=help, parents=[self.common])
        sub = parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")
        return Commands(sub, self.common, self.pool_flag)
