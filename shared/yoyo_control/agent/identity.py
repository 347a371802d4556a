"""The VM's identity token, which every heartbeat carries (the VM speaks only for itself).

On Google Cloud the token comes from the metadata server
(``instance/service-accounts/default/identity?audience=…&format=full``, header
``Metadata-Flavor: Google``): Google-signed, it names this instance, zone and project,
and no VM can obtain another's. The local stack signs the same claims with its own key
(made by local/identity.py; signed here with
adapters/identity_tokens.py, so the VM side never imports the local stack) instead.

Invariants: a token is fetched only when none is cached or the cached one expires within
``REFRESH_BEFORE_S`` (one fetch an hour, not one a heartbeat); a failed fetch raises and
is retried at the next heartbeat; the fetch itself runs under the loop's deadline.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

from .. import jsonhttp as http
from ..ports import Clock

REFRESH_BEFORE_S = 300.0


class CachedToken:
    def __init__(self, fetch: Callable[[], str], clock: Clock) -> None:
        self.fetch = fetch
        self.clock = clock
        self._token = ""
        self._expires_at = 0.0
        self.fetches = 0

    def __call__(self) -> str:
        if not self._token or self._expires_at - self.clock.now() < REFRESH_BEFORE_S:
            from google.auth import jwt

            token = self.fetch()
            self.fetches += 1
            # Our own token: only its expiry matters here (the control plane verifies it).
            claims = jwt.decode(token, verify=False)  # type: ignore[no-untyped-call]
            self._token, self._expires_at = token, float(claims.get("exp", 0))
        return self._token


def from_metadata(base_url: str, audience: str, timeout_s: float) -> Callable[[], str]:
    query = urllib.parse.urlencode({"audience": audience, "format": "full"})
    url = f"{base_url.rstrip('/')}/instance/service-accounts/default/identity?{query}"

    def fetch() -> str:
        status, body = http.request(
            "GET", url, headers={"Metadata-Flavor": "Google"}, timeout=timeout_s
        )
        if status != 200:
            raise OSError(f"metadata server answered {status} for the identity token")
        return body.decode("ascii").strip()

    return fetch


def from_local_key(
    key_file: str, audience: str, project: str, zone: str, instance: str, clock: Clock
) -> Callable[[], str]:
    from ..adapters.identity_tokens import sign_local

    def fetch() -> str:
        return sign_local(
            key_file,
            audience=audience,
            project=project,
            zone=zone,
            instance=instance,
            now=clock.now(),
        )

    return fetch
