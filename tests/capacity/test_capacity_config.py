"""Pools across zones: instance objects in the configuration, and each instance's price."""

from __future__ import annotations

from dataclasses import replace

import pytest

from yoyo_control.config import parse_config
from yoyo_control.domain.ledger import accrue, pool_cap_reached
from yoyo_control.domain.model import Instance, Ledger, Placement
from yoyo_control.errors import ConfigError

POOL = {
    "zone": "us-central1-a",
    "hourly_price_usd": 0.7,
    "instances": [
        "gpu-a",
        {"name": "gpu-b", "zone": "us-east4-c", "hourly_price_usd": 0.9},
        {
            "name": "gpu-std",
            "zone": "us-west1-b",
            "hourly_price_usd": 2.5,
            "provisioning": "standard",
        },
    ],
}


def test_plain_names_keep_the_pool_zone_and_objects_bring_their_own() -> None:
    policy = parse_config({"pools": {"gpu": POOL}}).pools["gpu"]
    assert policy.instances == ("gpu-a", "gpu-b", "gpu-std")
    assert policy.placement("gpu-a") == Placement("gpu-a", "us-central1-a", 0.7, "spot")
    assert policy.placement("gpu-b") == Placement("gpu-b", "us-east4-c", 0.9, "spot")
    assert policy.placement("gpu-std").provisioning == "standard"
    assert policy.zones == ("us-central1-a", "us-east4-c", "us-west1-b")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"zone": "z"}, r"instances\[0\].name"),
        ({"name": "a", "provisioning": "preemptible"}, "provisioning"),
        ({"name": "a", "hourly_price_usd": -1}, "hourly_price_usd"),
        ({"name": "a", "disk": "x"}, "unknown key"),
        (7, r"instances\[0\]"),
    ],
)
def test_a_bad_instance_object_names_its_key(item: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config({"pools": {"gpu": {"instances": [item]}}})


def test_duplicate_instance_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="unique"):
        parse_config({"pools": {"gpu": {"instances": ["a", {"name": "a", "zone": "z2"}]}}})


def test_the_ledger_charges_each_instance_its_own_price() -> None:
    policy = parse_config({"pools": {"gpu": POOL}}).pools["gpu"]
    t0 = 1_800_000_000.0
    running = [
        Instance("gpu-a", observed="RUNNING", running_since=t0),
        Instance("gpu-std", observed="RUNNING", running_since=t0),
    ]
    ledger = accrue(Ledger(accrued_until=t0), running, policy.prices, t0 + 3600, "UTC")
    assert ledger.day_usd == pytest.approx(0.7 + 2.5)


def test_the_caps_look_ahead_at_the_dearest_instance() -> None:
    """A cap is overrun by at most one tick of one instance: with instances at their own
    prices, the look-ahead must assume the dearest one (the standard fallback) runs."""
    policy = replace(parse_config({"pools": {"gpu": POOL}}).pools["gpu"], daily_cap_usd=10.0)
    ahead = 2.5 / 3600 * policy.tick_s * 2  # three instances: two may run past the look
    assert pool_cap_reached(Ledger(day="d", day_usd=10.0 - ahead - 0.001), policy) is None
    assert pool_cap_reached(Ledger(day="d", day_usd=10.0 - ahead + 0.001), policy) is not None
