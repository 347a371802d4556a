"""The local stack's stand-in for Google signing instance identity tokens.

On Google Cloud a VM's heartbeat carries its instance identity token, signed by Google.
The local stack has no Google: it signs the same claims with its own RSA key, and the
control plane checks them with the same code (adapters/identity_tokens.py) against the
key's public half.

Invariants: one key per state directory (``identity-key.pem``, mode 0600), created once
even when several processes race (the first link wins; every process derives the public
half, ``identity-key.pub.pem``, from the key that won); tokens follow the layout of
Compute Engine's full-format token (``google.compute_engine.{project_id, zone,
instance_name, instance_id}``), issuer ``LOCAL_ISSUER``, valid for an hour. The signing
itself is adapters/identity_tokens.py's ``sign_local``, which the VM side uses without
importing the local stack.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..adapters.identity_tokens import LOCAL_ISSUER, LOCAL_KEY_ID, TokenVerifier, local_certs
from ..adapters.identity_tokens import sign_local as sign

__all__ = ["KEY_FILE", "PUBLIC_FILE", "ensure_key", "public_key_path", "sign", "verifier"]

KEY_FILE = "identity-key.pem"
PUBLIC_FILE = "identity-key.pub.pem"
KEY_ID = LOCAL_KEY_ID


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
