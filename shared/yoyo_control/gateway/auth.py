"""Bearer keys for the gateway, stored hashed and compared in constant time.

Invariants: only SHA-256 digests of keys are read to check a request (a key file or an
environment variable holding digests); a presented key is hashed and compared with
every stored digest by ``hmac.compare_digest`` (no early exit on the first match); no
key configured means no request is allowed (never anonymous access).

Where the digests come from (``KeyRing.load``): the environment variable
``YOYO_GATEWAY_KEY_SHA256`` (comma-separated hex digests; in the cloud a Secret Manager
secret mounted as that variable), else ``<local.state_dir>/gateway-keys`` (one digest a
line). The local stack creates a key with ``ensure_local_key``; ``yoyoctl gateway key``
prints it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..names import ENV_GATEWAY_KEY_SHA256 as ENV_KEY_SHA256

KEYS_FILE = "gateway-keys"  # digests, read by the gateway
LOCAL_KEY_FILE = "gateway.key"  # the local stack's key itself, for yoyoctl gateway key
VLLM_KEY_FILE = "vllm.key"  # the local VMs' inference key (vLLM's --api-key)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class KeyRing:
    def __init__(self, digests: Iterable[str]) -> None:
        self._digests = tuple(d.strip().lower() for d in digests if d.strip())

    def __len__(self) -> int:
        return len(self._digests)

    def allows(self, authorization: str | None) -> bool:
        """True when the header is ``Bearer <key>`` and the key's digest is stored."""
        scheme, _, key = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return False
        presented = digest(key.strip()).encode()
        found = False
        for stored in self._digests:
            found |= hmac.compare_digest(presented, stored.encode())
        return found

    @classmethod
    def load(cls, state_dir: str, environ: Mapping[str, str] | None = None) -> KeyRing:
        env = os.environ if environ is None else environ
        if env.get(ENV_KEY_SHA256):
            return cls(env[ENV_KEY_SHA256].split(","))
        path = Path(state_dir) / KEYS_FILE
        try:
            return cls(path.read_text().splitlines())
        except OSError:
            return cls(())


def _secret_file(path: Path) -> str:
    """The secret in ``path``, created (mode 0600) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("yoyo-" + secrets.token_urlsafe(32))
        os.replace(tmp, path)
    return path.read_text().strip()


def ensure_local_key(state_dir: str | Path) -> str:
    """The local stack's gateway key (created once); its digest is in the keys file."""
    state = Path(state_dir)
    key = _secret_file(state / LOCAL_KEY_FILE)
    keys = state / KEYS_FILE
    known = keys.read_text().split() if keys.exists() else []
    if digest(key) not in known:
        keys.write_text("".join(f"{d}\n" for d in [*known, digest(key)]))
    return key


def ensure_vllm_key(state_dir: str | Path) -> str:
    """The local VMs' inference server key (vLLM's ``--api-key``), created once."""
    return _secret_file(Path(state_dir) / VLLM_KEY_FILE)
