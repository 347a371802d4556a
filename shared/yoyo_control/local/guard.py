"""The local stack answers only its operator: not a web page, not a rebound DNS name.

``yoyoctl local up`` listens on 127.0.0.1, which any web page the operator visits can
reach with a "simple" cross-origin request (POST, ``Content-Type: text/plain``), or
through a DNS name rebound to 127.0.0.1. Every request therefore passes ``Guard``:

- its ``Host`` must be the stack's own address (127.0.0.1, localhost or [::1] with the
  stack's port), else 403 — this refuses DNS rebinding;
- an ``Origin`` header, when present, must be the stack's own origin, else 403 — this
  refuses every cross-origin browser request, simple or not;
- a request that can change state (any method but GET, HEAD, OPTIONS) must carry the
  per-stack secret in ``X-Yoyo-Stack-Secret``, else 403. The secret is written afresh at
  every start to ``<state_dir>/stack-secret`` (mode 0600), where ``yoyoctl``, the local
  VMs, the bus and the kill watcher read it; a page cannot read it, and a custom header
  makes a browser ask permission first (a preflight this server never grants).
  The gateway's paths (``/v1/...``) are the exception: they take the gateway's own bearer
  key (what OpenAI clients send), which a page cannot read either.

Invariant: a refused request changes nothing and gets one line saying why.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .. import jsonhttp as http
from ..adapters.pubsub_rest import SECRET_HEADER, read_secret_file, secret_headers

HEADER = SECRET_HEADER  # the clients' side: adapters/pubsub_rest.py
SECRET_FILE = "stack-secret"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def new_secret(state_dir: str | Path) -> str:
    """A fresh secret for this stack, written where its clients read it."""
    folder = Path(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".stack-secret-")
    with os.fdopen(fd, "w") as out:  # mkstemp: mode 0600
        out.write(secret)
    os.replace(tmp, folder / SECRET_FILE)
    return secret


def read_secret(state_dir: str | Path) -> str:
    """The running stack's secret ("" when no stack wrote one)."""
    return read_secret_file(Path(state_dir) / SECRET_FILE)


def deliverer(secret: str) -> Callable[[str, dict[str, str], bytes], int]:
    """How the stack's own parts (bus, kill watcher, bridge) post to its entry points."""

    def deliver(url: str, headers: dict[str, str], body: bytes) -> int:
        status, _ = http.request(
            "POST", url, body, {**headers, **secret_headers(secret)}, timeout=120.0
        )
        return status

    return deliver


class Guard:
    """WSGI middleware: the rules in this module's docstring, in front of ``app``."""

    def __init__(
        self, app: Any, port: int, secret: str, own_auth: tuple[str, ...] = ("/v1/",)
    ) -> None:
        self.app = app
        self.secret = secret
        self.own_auth = own_auth  # path prefixes that authenticate their callers themselves
        self.hosts = frozenset(f"{name}:{port}" for name in _LOOPBACK_NAMES)
        self.origins = frozenset(f"http://{host}" for host in self.hosts)

    def refusal(self, environ: dict[str, Any]) -> str | None:
        host = str(environ.get("HTTP_HOST", "")).lower()
        if host not in self.hosts:
            return f"refused: Host {host[:80]!r} is not this stack (DNS rebinding?)"
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and str(origin).lower() not in self.origins:
            return f"refused: cross-origin request from {str(origin)[:80]!r}"
        path = str(environ.get("PATH_INFO", ""))
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if method not in SAFE_METHODS and not path.startswith(self.own_auth):
            given = str(environ.get("HTTP_X_YOYO_STACK_SECRET", ""))
            if not hmac.compare_digest(given.encode(), self.secret.encode()):
                return f"refused: a state-changing request needs the stack's {HEADER}"
        return None

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        why = self.refusal(environ)
        if why is None:
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        body = (why + "\n").encode()
        start_response(
            "403 Forbidden",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
        )
        return [body]
