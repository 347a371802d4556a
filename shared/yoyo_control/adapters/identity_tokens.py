"""Identity tokens (signed JWTs) checked with google-auth, against Google's keys or a local key.

Production: the VM's instance identity token, signed by Google; the keys are Google's
OAuth2 certificates (``GOOGLE_CERTS_URL``), fetched over HTTPS and kept for an hour.
Local stack: tokens signed with the stack's own RSA key (local/identity.py), checked by
the SAME ``TokenVerifier`` with that key's public half in place of Google's certificates.

Invariants: signature, ``exp``/``iat`` (60 s of clock skew), ``aud`` and ``iss`` are all
checked by ``google.auth.jwt.decode`` or here before any claim is returned; any fault of
the token is InvalidMessage (the message is acknowledged, never looped); keys that cannot
be fetched are a TemporaryError (the message is redelivered).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import InvalidMessage, TemporaryError

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
LOCAL_ISSUER = "yoyo-local"
LOCAL_KEY_ID = "yoyo-local-1"
LOCAL_LIFETIME_S = 3600
CLOCK_SKEW_S = 60
CERTS_TTL_S = 3600.0

Certs = Mapping[str, str]  # key id -> PEM certificate or public key


class TokenVerifier:
    """ports.IdentityVerifier: one audience, the issuers it trusts, where its keys come from."""

    def __init__(self, audience: str, issuers: tuple[str, ...], certs: Callable[[], Certs]):
        self.audience = audience
        self.issuers = issuers
        self.certs = certs

    def claims(self, token: str) -> Mapping[str, Any]:
        from google.auth import jwt

        if not isinstance(token, str) or not token:
            raise InvalidMessage("identity: no identity token")
        certs = self.certs()  # TemporaryError when they cannot be fetched
        try:
            claims: Mapping[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
                token, certs=certs, audience=self.audience, clock_skew_in_seconds=CLOCK_SKEW_S
            )
        except Exception as exc:  # any fault of the token (google-auth raises several kinds)
            raise InvalidMessage(f"identity: token refused: {_short(exc)}") from None
        if claims.get("iss") not in self.issuers:
            raise InvalidMessage(f"identity: token issued by {_short(claims.get('iss'))}")
        return claims


class GoogleCerts:
    """Google's OAuth2 certificates, fetched at most once an hour (per warm instance)."""

    def __init__(self, url: str = GOOGLE_CERTS_URL, ttl_s: float = CERTS_TTL_S) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._certs: Certs | None = None
        self._fetched_at = 0.0

    def __call__(self) -> Certs:
        with self._lock:
            if self._certs is None or time.monotonic() - self._fetched_at > self.ttl_s:
                self._certs = self._fetch()
                self._fetched_at = time.monotonic()
            return self._certs

    def _fetch(self) -> Certs:
        import google.auth.transport.requests

        try:
            response = google.auth.transport.requests.Request()(self.url, method="GET")
            if response.status != 200:
                raise OSError(f"HTTP {response.status}")
            certs = json.loads(response.data)
        except Exception as exc:
            raise TemporaryError(f"Google's certificates not fetched: {_short(exc)}") from exc
        return {str(k): str(v) for k, v in certs.items()}


def local_certs(public_key: Path, key_id: str) -> Callable[[], Certs]:
    """The local stack's public key as a one-key certificate set."""

    def certs() -> Certs:
        try:
            return {key_id: public_key.read_text()}
        except OSError as exc:
            raise TemporaryError(f"the local identity key is not readable: {exc}") from exc

    return certs


def _short(value: object) -> str:
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."


def sign_local(
    key_file: str | Path,
    *,
    audience: str,
    project: str,
    zone: str,
    instance: str,
    now: float,
    lifetime_s: float = LOCAL_LIFETIME_S,
) -> str:
    """A token for ``instance`` with the claims Compute Engine puts in a full-format one,
    signed with the local stack's key (local/identity.py makes it; a VM signs with it)."""
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
        Path(key_file).read_text(), key_id=LOCAL_KEY_ID
    )
