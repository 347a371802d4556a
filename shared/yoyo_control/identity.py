"""A VM speaks only for itself: a heartbeat is accepted only with its sender's identity.

Each heartbeat carries, in its ``identity`` field, the sending VM's instance identity
token (Google-signed on Google Cloud; signed with the stack's key locally). The token's
signature, expiry and audience are checked by a ports.IdentityVerifier; here its claims
are held against the heartbeat and the configuration.

Invariants: a heartbeat is admitted only when its token's
``google.compute_engine.instance_name`` is the heartbeat's instance, its ``zone`` is that
instance's configured zone (pools may span zones) and its ``project_id`` is the
configured project; anything else is an
InvalidMessage naming the mismatch (acknowledged, logged, not stored). The token is never
stored or logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .config import Config
from .domain.facts import HeartbeatReceived
from .errors import InvalidMessage
from .messages import json_payload, unwrap_pubsub
from .ports import IdentityVerifier

FIELD = "identity"


def heartbeat_token(event: Mapping[str, Any]) -> str:
    """The identity token in a heartbeat's CloudEvent ("" when there is none)."""
    token = json_payload(unwrap_pubsub(event), "heartbeat").get(FIELD)
    return token if isinstance(token, str) else ""


def admit_heartbeat(
    fact: HeartbeatReceived, token: str, verifier: IdentityVerifier, config: Config
) -> None:
    """Raise InvalidMessage unless ``token`` proves the heartbeat's VM sent it."""
    if not token:
        raise InvalidMessage("heartbeat: no identity token (field 'identity'); not accepted")
    claims = verifier.claims(token)
    google = claims.get("google")
    engine = google.get("compute_engine") if isinstance(google, Mapping) else None
    if not isinstance(engine, Mapping):
        raise InvalidMessage("heartbeat: the identity token has no compute_engine claims")
    policy = config.policy(fact.pool)
    expected = {
        "instance_name": fact.heartbeat.instance,
        "zone": policy.placement(fact.heartbeat.instance).zone,
        "project_id": config.project,
    }
    for claim, want in expected.items():
        got = engine.get(claim)
        if got != want:
            raise InvalidMessage(
                f"heartbeat for {fact.heartbeat.instance!r} of pool {fact.pool!r} signed by "
                f"another VM: {claim} is {_show(got)}, expected {want!r}"
            )


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
