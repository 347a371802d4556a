"""Capacity in the local stack: a pool with instances in two zones, the first zone refusing
for capacity (``yoyoctl local refuse-zone``); a wake is served from the second zone."""

from __future__ import annotations

from typing import Any

Stack = Any  # tests/local/conftest.py: Stack (a running `yoyoctl local up`)


def two_zones(config: dict[str, Any]) -> None:
    pool = config["pools"]["default"]
    pool["zone"] = "local-a"
    pool["instances"] = ["vm-0", {"name": "vm-1", "zone": "local-b", "hourly_price_usd": 0.5}]
    pool["zone_backoff_s"] = 300


def test_a_wake_refused_in_the_first_zone_is_served_from_the_second(configured_stack) -> None:
    stack = configured_stack(two_zones)
    refusing = stack.yoyoctl("local", "refuse-zone", "local-a")["refusing"]
    assert refusing == {"local-a": "ZONE_RESOURCE_POOL_EXHAUSTED"}

    answer = stack.yoyoctl("ask", "Where are you?", "--max-tokens", "3", "--timeout", "60")
    assert answer["cold_start"] is True

    pool = stack.status()
    vms = {i["name"]: (i["zone"], i["vm"]) for i in pool["instances"]}
    assert vms == {"vm-0": ("local-a", "TERMINATED"), "vm-1": ("local-b", "RUNNING")}
    zones = {z["zone"]: z for z in pool["zones"]}
    assert zones["local-a"]["health"] == "backing off"
    assert zones["local-a"]["refusals_in_a_row"] == 1
    assert zones["local-b"]["health"] == "ok"
    events = stack.yoyoctl("events", "--limit", "200")["events"]
    reasons = [e["reason"] for e in events]
    assert any("start vm-0: capacity: " in r for r in reasons), reasons
    assert any("start vm-1: zone local-a skipped" in r for r in reasons), reasons
    starts = [
        e["data"]["action"]["instance"]
        for e in events
        if e["kind"] == "action" and e["data"]["action"]["kind"] == "start"
    ]
    assert starts == ["vm-0", "vm-1"]  # one refused, one served: never two for one wake
