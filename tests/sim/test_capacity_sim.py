"""sim/capacity.py: the per-zone stockout process, and the real Service failing over
between zones (and to the standard fallback) in virtual time."""

from __future__ import annotations

import pytest

from yoyo_control.config import parse_config
from yoyo_control.sim.capacity import CapacitySimulation, Weather
from yoyo_control.sim.params import SimParams
from yoyo_control.sim.policies import parse_policy
from yoyo_control.sim.workload import Request

T0 = 1_800_000_000.0
DAY = 86400.0


def test_a_zone_is_out_for_its_share_of_the_time_and_the_draw_is_deterministic() -> None:
    weather = Weather(stockout_share=0.3, stockout_mean_s=3600, seed=7)
    spans = weather.outages("zone-a", T0, T0 + 2000 * DAY, 0.3)
    out = sum(min(b, T0 + 2000 * DAY) - a for a, b in spans) / (2000 * DAY)
    assert out == pytest.approx(0.3, abs=0.02)
    assert sum(b - a for a, b in spans) / len(spans) == pytest.approx(3600, rel=0.05)
    assert spans == weather.outages("zone-a", T0, T0 + 2000 * DAY, 0.3)
    assert spans != weather.outages("zone-b", T0, T0 + 2000 * DAY, 0.3)  # independent


def pool(*instances: dict[str, object]):
    raw = {"instances": list(instances), "fallback_after_s": 60}
    return parse_config({"pools": {"gpu": raw}}).pools["gpu"]


def run(policy, outages: dict[str, list[tuple[float, float]]]) -> CapacitySimulation:
    requests = [Request(T0 + h * 3600.0, 600.0) for h in range(1, 12, 2)]  # 6 wakes
    sim = CapacitySimulation(
        requests,
        parse_policy("adaptive"),
        policy,
        Weather(stockout_share=0.0, preempt_per_hour=0.0),
        params=SimParams(seed=1),
    )
    sim.compute.outages.update(outages)
    sim.run()
    return sim


def test_wakes_refused_in_the_first_zone_are_served_from_the_second() -> None:
    policy = pool(
        {"name": "a", "zone": "zone-a", "hourly_price_usd": 0.5},
        {"name": "b", "zone": "zone-b", "hourly_price_usd": 0.7},
    )
    sim = run(policy, {"zone-a": [(0.0, T0 + DAY)]})
    assert len(sim.wake_waits) == 6 and max(sim.wake_waits) < 300
    assert sim.compute.vms["a"].boots == 0 and sim.compute.vms["b"].boots == 6
    # Refused once: from then on b has run (its disk holds the weights) and is preferred
    # to the cheaper, cold a.
    assert sim.compute.refusals == {"zone-a": 1}


def test_with_spot_out_everywhere_the_standard_fallback_serves_at_its_own_price() -> None:
    policy = pool(
        {"name": "a", "zone": "zone-a", "hourly_price_usd": 0.7},
        {"name": "std", "zone": "zone-a", "hourly_price_usd": 1.9, "provisioning": "standard"},
    )
    sim = run(policy, {"zone-a": [(0.0, T0 + DAY)]})
    assert len(sim.wake_waits) == 6 and max(sim.wake_waits) < 300
    assert sim.compute.vms["std"].boots == 6 and sim.compute.vms["a"].boots == 0
    assert sim.compute.dollars() == pytest.approx(sim.compute.billed_s("std") * 1.9 / 3600)


def test_without_a_fallback_a_wake_waits_for_the_stockout_to_end() -> None:
    policy = pool({"name": "a", "zone": "zone-a", "hourly_price_usd": 0.7})
    sim = run(policy, {"zone-a": [(0.0, T0 + 3600 + 1200)]})  # the first wake: 20 min out
    assert sim.wake_waits[0] > 1200
    assert max(sim.wake_waits[1:]) < 300
