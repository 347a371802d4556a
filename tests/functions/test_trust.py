"""Issue 12 (trust) at the entry points: each test is named after its case and failed
before its fix. Real functions-framework app, real bootstrap, the SQLite store (the
Firestore emulator runs the same deliveries in test_fuzz.py)."""

from __future__ import annotations

from yoyo_control import names

CYCLE = names.ENTRY_POINTS[names.TOPIC_CYCLE]
CONTROL = names.ENTRY_POINTS[names.TOPIC_CONTROL]


# --- case 8: fact ids are keyed by source and message id ----------------------------------


def test_case8_a_control_start_reusing_a_cycle_message_id_is_not_a_duplicate(world, call, envelope):
    cycle = envelope({"pool": world.pool}, message_id="42", topic="yoyo-cycle")
    assert call(CYCLE, cycle).status_code == 200
    stop = envelope(
        {"command": "stop", "pool": world.pool},
        message_id="7",
        topic="yoyo-control",
        publish_time="2026-11-23T04:06:20Z",
    )
    assert call(CONTROL, stop).status_code == 200
    assert world.store.get_pool(world.pool).lease is None
    start = envelope(
        {"command": "start", "pool": world.pool, "for": "1h"},
        message_id="42",
        topic="yoyo-control",
        publish_time="2026-11-23T04:06:30Z",
    )
    assert call(CONTROL, start).status_code == 200
    lease = world.store.get_pool(world.pool).lease
    assert lease is not None and lease.holder == "operator"
    assert world.facts().count("42") == 2  # one per source


def test_case8_a_fact_recorded_under_its_old_id_is_still_a_duplicate(world, call, envelope):
    """Stores written before the change hold ``fact:<kind>:<message id>``: a redelivery of
    such a message is still recognised (the old id is checked too)."""
    from yoyo_control.ports import Event

    old = Event("fact:RunRequested:43", "fact", 0.0, world.pool, "43", "RunRequested")
    world.store.transact(lambda tx: tx.append(old))
    cycle = envelope({"pool": world.pool}, message_id="43", topic="yoyo-cycle")
    assert call(CYCLE, cycle).status_code == 200
    assert world.store.get_pool(world.pool).lease is None  # a duplicate: nothing granted
    assert world.facts() == ["43"]


# --- case 1: every text decoding accepts is storable; a kill engages whatever it says ------

TICK = names.ENTRY_POINTS[names.TOPIC_TICK]
HEARTBEAT = names.ENTRY_POINTS[names.TOPIC_HEARTBEAT]
BUDGET = names.ENTRY_POINTS[names.TOPIC_BUDGET]
LONE = "\ud83d"  # what JSON.stringify emits for a string cut inside an emoji
_ids = iter(range(1000, 10**6))


def _running(world, call, envelope) -> None:
    assert call(CYCLE, envelope({"pool": world.pool}, message_id="c-1")).status_code == 200
    assert world.compute.status[world.instance] == "RUNNING"


def _tick(world, call, envelope) -> int:
    world.clock.advance(60)
    return call(TICK, envelope({}, message_id=f"t-{next(_ids)}")).status_code


def test_case1_lone_surrogate_kill_engages(any_world, call, envelope):
    world = any_world
    _running(world, call, envelope)
    kill = {"command": "kill", "reason": f"cut emoji {LONE}", "by": f"eve{LONE}"}
    assert call(CONTROL, envelope(kill, message_id="k-1")).status_code == 200
    switch = world.store.get_kill()
    assert switch.engaged and switch.reason == "cut emoji \ufffd" and switch.by == "eve\ufffd"
    assert _tick(world, call, envelope) == 200  # every later reconcile works
    assert world.compute.status[world.instance] in ("STOPPING", "TERMINATED")


REASONS = [
    LONE * 3,
    "x" * 5000,
    "",
    "   ",
    12345,
    None,
    {"why": ["nested"]},
    "a\x00b",
    "\u202eevil",
]


def test_case1_a_kill_engages_whatever_its_reason_and_by_say(any_world, call, envelope):
    world = any_world
    _running(world, call, envelope)
    for n, odd in enumerate(REASONS):
        for key in ("reason", "by"):
            world.store.transact(lambda tx: tx.save_kill(type(world.store.get_kill())()))
            body = {"command": "kill", key: odd}
            assert call(CONTROL, envelope(body, message_id=f"k-{key}-{n}")).status_code == 200
            switch = world.store.get_kill()
            assert switch.engaged, (key, odd, world.rejected())
            assert len(switch.reason) <= 500 and len(switch.by) <= 100
    world.store.transact(lambda tx: tx.save_kill(type(world.store.get_kill())()))
    typo = {"command": "kill", "reason": "x", "fro": "alice"}  # unknown keys too
    assert call(CONTROL, envelope(typo, message_id="k-typo")).status_code == 200
    assert world.store.get_kill().engaged
    assert _tick(world, call, envelope) == 200


def _beat(world, **fields):
    return {
        "pool": world.pool,
        "instance": world.instance,
        "boot_id": "b-1",
        "sent_at": "2026-11-23T04:06:10Z",
        "busy": True,
        **fields,
    }


def test_case1_every_text_field_with_a_lone_surrogate_is_stored_or_rejected(
    any_world, call, envelope, signed
):
    """Stop/start reasons, ``by``, heartbeat ``boot_id``, budget currency and display
    name, unknown keys and pool names: each delivery is acknowledged, and the store keeps
    working (every later tick answers 200)."""
    world = any_world
    _running(world, call, envelope)
    budget_attrs = {"budgetId": world.budget_id, "schemaVersion": "1.0"}
    budget = {"costAmount": 1.0, "budgetAmount": 100.0, "currencyCode": f"U{LONE}"}
    deliveries = [
        (CONTROL, {"command": "start", "pool": world.pool, "reason": LONE, "by": LONE}, None),
        (CONTROL, {"command": "extend", "pool": world.pool, "by": LONE}, None),
        (CONTROL, {"command": "stop", "pool": world.pool, "reason": LONE, "by": LONE}, None),
        (CONTROL, {"command": "stop", "pool": LONE}, None),
        (CONTROL, {"command": LONE}, None),
        (CONTROL, {"command": "unkill", "by": LONE, LONE: 1}, None),
        (HEARTBEAT, signed(_beat(world, boot_id=f"b{LONE}")), None),
        (HEARTBEAT, signed(_beat(world, instance=LONE)), None),
        (BUDGET, {**budget, "budgetDisplayName": LONE}, budget_attrs),
        (BUDGET, budget, {**budget_attrs, "budgetId": LONE}),
        (CYCLE, {"pool": world.pool, "window": LONE}, None),
    ]
    for target, body, attributes in deliveries:
        mid = f"m-{next(_ids)}"
        response = call(target, envelope(body, message_id=mid, attributes=attributes))
        assert response.status_code == 200, (body, response.data)
        recorded = [e for e in world.store.events(limit=10_000) if e.message_id == mid]
        assert recorded, body  # a fact or a rejection, never nothing
        assert _tick(world, call, envelope) == 200, body
    beat = world.store.get_heartbeat(world.pool, world.instance)
    assert beat is not None and beat.boot_id == "b\ufffd"


# --- case 2: kill/unkill and operator commands are ordered by trusted times -----------------


def _cli_with_clock(monkeypatch, seconds: float, *argv: str) -> None:
    """``yoyoctl *argv`` on a machine whose wall clock reads ``seconds``."""
    import time as real_time
    from types import SimpleNamespace

    from yoyo_control import cli
    from yoyo_control.cli import killswitch

    clock = {name: getattr(real_time, name) for name in dir(real_time) if not name.startswith("_")}
    monkeypatch.setattr(killswitch, "time", SimpleNamespace(**{**clock, "time": lambda: seconds}))
    assert cli.main([*argv, "--yes"]) == 0


def test_case2_a_kill_published_after_a_fast_clock_unkill_direct_engages(
    any_world, call, envelope, monkeypatch
):
    world = any_world
    _running(world, call, envelope)
    _cli_with_clock(monkeypatch, world.clock.now() + 600, "unkill", "--direct")
    kill = envelope(
        {"command": "kill", "reason": "incident"},
        message_id="k-after",
        publish_time="2026-11-23T04:06:50Z",  # the true time, after the unkill
    )
    assert call(CONTROL, kill).status_code == 200
    assert world.store.get_kill().engaged
    assert _tick(world, call, envelope) == 200
    assert world.compute.status[world.instance] in ("STOPPING", "TERMINATED")


def test_case2_a_slow_clock_kill_direct_is_not_lifted_by_an_older_unkill(
    any_world, call, envelope, monkeypatch
):
    """The switch's time is its commit time in the store, not the writer's clock: an
    unkill published before a console/--direct kill and delivered after it is stale."""
    world = any_world
    _cli_with_clock(monkeypatch, world.clock.now() - 3600, "kill", "--direct", "--reason", "x")
    unkill = envelope(
        {"command": "unkill"}, message_id="u-old", publish_time="2026-11-23T04:06:00Z"
    )
    assert call(CONTROL, unkill).status_code == 200
    assert world.store.get_kill().engaged


def test_case2_a_kill_is_never_dropped_against_a_lift(any_world, call, envelope):
    world = any_world
    unkill = envelope({"command": "unkill"}, message_id="u-2", publish_time="2026-11-23T04:10:00Z")
    late_kill = envelope(
        {"command": "kill", "reason": "delayed"},
        message_id="k-1",
        publish_time="2026-11-23T04:05:00Z",
    )
    assert call(CONTROL, unkill).status_code == 200
    assert call(CONTROL, late_kill).status_code == 200
    assert world.store.get_kill().engaged


def test_case2_a_start_published_before_a_stop_but_delivered_after_does_not_restart(
    any_world, call, envelope
):
    world = any_world
    start = envelope(
        {"command": "start", "pool": world.pool, "for": "1h"},
        message_id="s-1",
        publish_time="2026-11-23T04:06:20Z",
    )
    stop = envelope(
        {"command": "stop", "pool": world.pool},
        message_id="s-2",
        publish_time="2026-11-23T04:06:30Z",
    )
    assert call(CONTROL, stop).status_code == 200
    assert call(CONTROL, start).status_code == 200
    assert world.store.get_pool(world.pool).lease is None
    assert world.compute.acted("start") == []
    assert any("published before" in e.reason for e in world.events("decision"))


def test_case2_operator_commands_take_effect_in_publish_order(any_world, call, envelope):
    """Every order of delivery of (start, stop, extend) leaves what publish order leaves."""
    import itertools

    world = any_world
    bodies = {
        "start": ({"command": "start", "pool": world.pool, "for": "1h"}, "04:06:20"),
        "stop": ({"command": "stop", "pool": world.pool}, "04:06:30"),
        "extend": ({"command": "extend", "pool": world.pool, "for": "2h"}, "04:06:25"),
    }
    for n, order in enumerate(itertools.permutations(bodies)):
        for name in order:
            body, at = bodies[name]
            event = envelope(body, message_id=f"o-{n}-{name}", publish_time=f"2026-11-23T{at}Z")
            assert call(CONTROL, event).status_code == 200
        assert world.store.get_pool(world.pool).lease is None, order  # the stop was last


def test_case1_a_budget_kill_engages_whatever_its_informational_texts_say(
    any_world, call, envelope
):
    """Display name, currency and interval start only describe the notification: odd or
    unstorable ones must not cost the kill (costAmount and budgetAmount decide)."""
    world = any_world
    attributes = {"budgetId": world.budget_id, "schemaVersion": "1.0"}
    odd_values = [LONE, "", "x" * 5000, 42, {"a": [1]}, "\x00\u202e"]
    for n, odd in enumerate(odd_values):
        for key in ("budgetDisplayName", "currencyCode", "costIntervalStart"):
            world.store.transact(lambda tx: tx.save_kill(type(world.store.get_kill())()))
            body = {"costAmount": 152.37, "budgetAmount": 150.0, "currencyCode": "USD", key: odd}
            event = envelope(body, message_id=f"b-{key}-{n}", attributes=attributes)
            assert call(BUDGET, event).status_code == 200
            switch = world.store.get_kill()
            assert switch.engaged and switch.reason.startswith("budget: 152.37 of 150.00"), (
                key,
                odd,
                world.rejected(),
            )
