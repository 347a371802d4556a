"""What ``yoyoctl`` does to the local stack directly, where Google Cloud has no counterpart:
find the running stack, read its VMs' table and keys, make a zone refuse starts
(laptop.LocalOperator adds running it).

Invariants: built only by the local root (laptop.py, on the local backend); reads and
writes only the stack's state directory and its ``/healthz``; finding the stack waits at
most ``STACK_STARTING_WAIT_S`` for one that is still starting, and finds none when
nothing answers.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from .. import jsonhttp as http
from ..config import Config
from ..errors import TemporaryError
from ..gateway import auth
from .compute import InstanceTable, Row

STACK_STARTING_WAIT_S = 60.0  # how long a command waits for a local stack still starting


def adopt_running_stack(config: Config) -> Config:
    """``config`` with the running stack's state directory, its emulators in the
    environment: the stack this configuration names, found by its address alone (a
    relative ``state_dir`` resolves differently in another directory; the emulators'
    ports are known only to the stack). Unchanged when no stack answers."""
    local = config.local
    url = f"http://{local.host}:{local.port}/healthz"
    deadline = time.monotonic() + STACK_STARTING_WAIT_S
    while True:
        try:
            status, body = http.get(url, timeout=2.0)
            info = json.loads(body)
        except (OSError, ValueError):
            return config  # no stack here: a command that needs one says so
        if not isinstance(info, dict):
            return config
        if status == 200:
            break
        if time.monotonic() > deadline or info.get("ready") is None:
            raise TemporaryError(
                f"the local stack at {url} is not ready (HTTP {status}); try again"
            )
        time.sleep(0.2)  # starting: "up" means its topics and subscriptions exist
    state_dir = info.get("state_dir")
    if isinstance(state_dir, str) and state_dir:
        config = replace(config, local=replace(local, state_dir=state_dir))
    for key, value in (info.get("emulators") or {}).items():
        os.environ[str(key)] = str(value)
    return config


class Operator:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.state_dir = Path(config.local.state_dir)

    def table(self) -> InstanceTable:
        return InstanceTable(self.state_dir / "compute.sqlite3")

    def vms(self) -> Mapping[str, Row]:
        """Every local VM's row (its process status and endpoint), by instance name."""
        return {row.name: row for row in self.table().rows()}

    def gateway_key(self) -> tuple[str, str]:
        """The gateway's key (made on first use) and its base URL."""
        key = auth.ensure_local_key(self.config.local.state_dir)
        return key, f"http://{self.config.local.host}:{self.config.local.port}/v1"
