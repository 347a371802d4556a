"""A VM speaks only for itself (issue 12, case 4), through the real heartbeat entry point.

Heartbeats are signed with the world's local key — the local stack's stand-in for
Google's — and checked by the same verifier production uses with Google's certificates
(adapters/identity_tokens.py). A refused beat is acknowledged (200), recorded as
rejected with its reason, and stores nothing: no heartbeat, no lease change.
"""

from __future__ import annotations

import time

import pytest

from yoyo_control import names

HEARTBEAT = names.ENTRY_POINTS[names.TOPIC_HEARTBEAT]
CYCLE = names.ENTRY_POINTS[names.TOPIC_CYCLE]
TICK = names.ENTRY_POINTS[names.TOPIC_TICK]


def start_pool(world, call, envelope, payload) -> None:
    assert call(CYCLE, envelope(payload("cycle.json"), message_id="c-1")).status_code == 200
    assert world.compute.status[world.instance] == "RUNNING"


def refused(world, call, envelope, beat, mid: str = "h-1") -> str:
    lease_before = world.store.get_pool(world.pool).lease
    response = call(HEARTBEAT, envelope(beat, message_id=mid))
    assert response.status_code == 200  # acknowledged: a redelivery would not help
    pool = world.store.get_pool(world.pool)
    assert world.instance not in pool.heartbeats, "a refused beat was stored"
    assert pool.lease == lease_before
    assert mid not in world.facts()
    return world.rejected()[mid]


@pytest.mark.parametrize(
    ("claims", "mismatch"),
    [
        ({"instance": "yoyo-gpu-0"}, "instance_name"),  # another VM (of another pool)
        ({"zone": "europe-west4-a"}, "zone"),  # a VM of the same name elsewhere
        ({"project": "someone-else"}, "project_id"),  # a VM of another project
    ],
)
def test_a_heartbeat_signed_by_another_vm_is_rejected_and_not_stored(
    world, call, envelope, payload, signed, claims, mismatch
) -> None:
    start_pool(world, call, envelope, payload)
    forged = signed(payload("heartbeat_busy.json"), **claims)
    reason = refused(world, call, envelope, forged)
    assert "signed by another VM" in reason and mismatch in reason


def test_a_heartbeat_without_an_identity_token_is_rejected(world, call, envelope, payload):
    start_pool(world, call, envelope, payload)
    assert "no identity token" in refused(world, call, envelope, payload("heartbeat_busy.json"))


def test_a_heartbeat_signed_with_another_key_is_rejected(
    world, call, envelope, payload, signed, tmp_path
) -> None:
    start_pool(world, call, envelope, payload)
    forged = signed(payload("heartbeat_busy.json"), key_dir=tmp_path / "attacker")
    assert "token refused" in refused(world, call, envelope, forged)


def test_an_expired_identity_token_is_rejected(world, call, envelope, payload, signed):
    start_pool(world, call, envelope, payload)
    old = signed(payload("heartbeat_busy.json"), now=time.time() - 7200)
    assert "token refused" in refused(world, call, envelope, old)


def test_an_identity_token_for_another_audience_is_rejected(
    world, call, envelope, payload, signed
) -> None:
    start_pool(world, call, envelope, payload)
    other = signed(payload("heartbeat_busy.json"), audience="https://example.com/other")
    assert "token refused" in refused(world, call, envelope, other)


@pytest.mark.parametrize("token", ["", "not.a.jwt", "a" * 5000, "\ud83d", 42])
def test_a_malformed_identity_token_is_rejected(world, call, envelope, payload, token):
    start_pool(world, call, envelope, payload)
    beat = {**payload("heartbeat_busy.json"), "identity": token}
    reason = refused(world, call, envelope, beat)
    assert "identity" in reason or "token" in reason


def test_a_heartbeat_with_its_own_token_is_stored(world, call, envelope, payload, signed):
    start_pool(world, call, envelope, payload)
    beat = signed(payload("heartbeat_busy.json"))
    assert call(HEARTBEAT, envelope(beat, message_id="h-1")).status_code == 200
    stored = world.store.get_pool(world.pool).heartbeats[world.instance]
    assert stored.busy and world.rejected() == {}


def test_a_heartbeat_dated_2099_does_not_turn_idle_release_off(
    world, call, envelope, payload, signed
) -> None:
    start_pool(world, call, envelope, payload)
    future = {**payload("heartbeat_idle.json"), "last_request_at": "2099-01-01T00:00:00Z"}
    assert call(HEARTBEAT, envelope(signed(future), message_id="h-1")).status_code == 200
    stored = world.store.get_pool(world.pool).heartbeats[world.instance]
    assert stored.last_request_at is not None and stored.last_request_at <= stored.received_at
    world.clock.advance(601)  # the pool's idle_timeout_s is 600
    assert call(TICK, envelope({}, message_id="t-1")).status_code == 200
    assert world.store.get_pool(world.pool).lease is None
    assert world.compute.status[world.instance] == "TERMINATED"


def test_a_vm_in_its_own_zone_of_a_multi_zone_pool_is_admitted() -> None:
    """The token's zone is checked against the instance's own zone (pools across zones),
    not the pool's default zone: a VM placed in us-east1-b is not 'another VM'."""
    from yoyo_control import identity
    from yoyo_control.config import parse_config
    from yoyo_control.domain.facts import HeartbeatReceived
    from yoyo_control.domain.model import Heartbeat
    from yoyo_control.errors import InvalidMessage

    config = parse_config(
        {
            "project": "my-project",
            "pools": {
                "default": {
                    "zone": "us-central1-a",
                    "instances": ["vm-a", {"name": "vm-b", "zone": "us-east1-b"}],
                }
            },
        }
    )

    class Verified:  # the signature was checked: these are the token's claims
        def __init__(self, zone: str) -> None:
            self.zone = zone

        def claims(self, token: str) -> dict[str, object]:
            engine = {"instance_name": "vm-b", "zone": self.zone, "project_id": "my-project"}
            return {"google": {"compute_engine": engine}}

    beat = HeartbeatReceived("m-1", 0.0, "default", Heartbeat("vm-b", "b-1", 0.0, 0.0))
    identity.admit_heartbeat(beat, "token", Verified("us-east1-b"), config)
    with pytest.raises(InvalidMessage, match="zone"):
        identity.admit_heartbeat(beat, "token", Verified("us-central1-a"), config)
