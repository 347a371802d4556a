"""Interactions the simulator found in decide(), pinned on decide() itself.

Each failed before the change it names landed.
"""

from __future__ import annotations

from dataclasses import replace

from yoyo_control.domain.decide import decide
from yoyo_control.domain.model import (
    ActionKind,
    ActionRecord,
    Desired,
    Heartbeat,
    Instance,
    KillSwitch,
    Lease,
    PoolPolicy,
    PoolState,
    Rule,
)

T0 = 1_800_000_000.0
POLICY = PoolPolicy(pool="p", zone="z", instances=("vm-0",), lease_s=1800, idle_timeout_s=1500)


def test_a_keep_alive_longer_than_half_a_lease_is_honoured() -> None:
    """Busy heartbeats extend the lease only in steps of lease_s / 2, so after the last
    one the lease may have just lease_s / 2 left: with the default lease_s (1800) and a
    1500 s keep-alive, rule 3 stops the VM 950 s after its last request, not rule 6
    after 1500 s (proposed: extend busy leases to now + lease_s + the keep-alive)."""
    start = ActionRecord(ActionKind.START, 1, "rid", T0, "test", outcome="done")
    inst = Instance("vm-0", Desired.RUNNING, "RUNNING", T0, T0, last_action=start)
    lease = Lease("wake", ("request",), 1, T0, T0 + 1800, T0 + 8 * 3600)
    busy = Heartbeat("vm-0", "b", T0 + 850, T0 + 850, busy=True, last_request_at=T0 + 850)
    s = PoolState(pool="p", epoch=1, lease=lease, instances={"vm-0": inst})
    s = decide(replace(s, heartbeats={"vm-0": busy}), KillSwitch(), POLICY, T0 + 850).state
    idle = replace(busy, sent_at=T0 + 851, received_at=T0 + 851, busy=False)
    s = replace(s, heartbeats={"vm-0": replace(idle, last_busy_at=T0 + 850)})
    d = decide(s, KillSwitch(), POLICY, T0 + 1801)  # idle for 950 s of its 1500 s
    assert d.state.lease is not None, [c.reason for c in d.changes]
    assert Rule.NO_LEASE not in {c.rule for c in d.changes}
