"""The local stack's stand-in for Google signing instance identity tokens.

On Google Cloud a VM's heartbeat carries its instance identity token, signed by Google.
The local stack has no Google: it signs the same claims with its own RSA key, and the
control plane checks them with the same code (adapters/identity_tokens.py) against the
key's public half.

Invariants: one key per state directory (``identity-key.pem``, mode 0600), created once
even when several processes race (the first link wins; every process derives the public
half, ``identity-key.pub.pem``, from the key that won); tokens follow the layout of
Compute Engine's full-format token (``google.compute_engine.{project_id, zone,
instance_name, instance_id}``), issuer ``LOCAL_ISSUER``, valid for ``LIFETIME_S``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from pathlib import Path
from typing import Any

from ..adapters.identity_tokens import LOCAL_ISSUER, TokenVerifier, local_certs

KEY_FILE = "identity-key.pem"
PUBLIC_FILE = "identity-key.pub.pem"
KEY_ID = "yoyo-local-1"
LIFETIME_S = 3600


def ensure_key(state_dir: str | Path) -> Path:
    """The state directory's signing key (created on first use); returns its path."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    folder = Path(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    key_path, public_path = folder / KEY_FILE, folder / PUBLIC_FILE
    if not key_path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".identity-key-")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, pem)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, key_path)  # atomic: the first process to link wins
        os.unlink(tmp)
    if not public_path.exists():
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        public = loaded.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".identity-pub-")
        with os.fdopen(fd, "wb") as out:
            out.write(public)
        os.replace(tmp, public_path)
    return key_path


def public_key_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / PUBLIC_FILE


def verifier(state_dir: str | Path, audience: str) -> TokenVerifier:
    """The production verifier, trusting this state directory's key instead of Google's."""
    ensure_key(state_dir)
    return TokenVerifier(audience, (LOCAL_ISSUER,), local_certs(public_key_path(state_dir), KEY_ID))


def sign(
    key_file: str | Path,
    *,
    audience: str,
    project: str,
    zone: str,
    instance: str,
    now: float,
    lifetime_s: float = LIFETIME_S,
) -> str:
    """A token for ``instance`` with the claims Compute Engine puts in a full-format one."""
    from google.auth import jwt

    signer = _signer(str(key_file))
    payload = {
        "iss": LOCAL_ISSUER,
        "aud": audience,
        "sub": instance,
        "iat": int(now),
        "exp": int(now + lifetime_s),
        "google": {
            "compute_engine": {
                "project_id": project,
                "zone": zone,
                "instance_name": instance,
                "instance_id": instance,
            }
        },
    }
    token: bytes = jwt.encode(signer, payload)  # type: ignore[no-untyped-call]
    return token.decode("ascii")


@functools.lru_cache(maxsize=8)
def _signer(key_file: str) -> Any:
    """The key, loaded once per process (loading validates it: ~0.1 s; a key never changes)."""
    from google.auth import crypt

    return crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
        Path(key_file).read_text(), key_id=KEY_ID
    )
